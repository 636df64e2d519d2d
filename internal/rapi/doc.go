// Package rapi drives an OpenEVSE charging station controller over RAPI,
// its serial "remote API", for the wall controller: enable at a current
// limit, sleep, read state, current, voltage and the session's energy.
//
// # Connecting a real OpenEVSE
//
// The OpenEVSE controller board speaks RAPI on its 6-pin FTDI-style
// serial header (5 V TTL: pin 1 GND, pin 3 5 V, pin 4 RX, pin 5 TX) at
// 115200 baud, 8 data bits, no parity, one stop bit, no flow control.
// Connect a 5 V USB-TTL serial adapter (adapter TX to pin 4, adapter RX to
// pin 5, GND to pin 1; leave the adapter's power pin unconnected) and
// point the driver at it:
//
//	d, err := rapi.Open(ctx, rapi.Config{Device: "/dev/ttyUSB0"})
//
// Prefer a stable name such as /dev/serial/by-id/usb-FTDI_...-if00-port0,
// which survives re-plugging, and give the wall controller's user access to
// the device (usually the dialout group). The driver sets the port raw
// 8N1 itself; Config.Baud is only for boards built with another
// SERIAL_BAUD. If Open reports that nothing answers, swap RX and TX. By
// hand, "screen /dev/ttyUSB0 115200" and typing "$GV" then Enter should
// show "$OK" with the firmware and RAPI versions.
//
// If the OpenEVSE WiFi module is fitted, it sits on that same header and
// already speaks RAPI to the controller: only one master may, so unplug the
// WiFi module while the wall controller is connected (two masters would
// answer each other's replies and fight over enable and sleep).
//
// Firmware requirements: replies must carry RAPI's '^XX' XOR checksum,
// which firmware sends from RAPI 2.0.0 on (the second field of $GV's
// reply); lines without a checksum are rejected. Firmware with RAPI 3.0.0 or later also
// echoes sequence ids, which the driver detects and uses to pair replies
// with commands. Firmware built with HEARTBEAT_SUPERVISION (the default in
// the PlatformIO release builds) accepts the $SY heartbeat; without it the
// driver still works but logs a warning at connect. The EVSE needs an
// ammeter and kWh recording (AMMETER, KWH_RECORDING, also defaults) for
// $GG and $GU, which Status needs.
//
// # What the driver does
//
// Commands go one at a time, each with its checksum, and wait for their
// reply up to Config.CommandTimeout; no reply is an error wrapping
// evse.ErrUnreachable. A reader goroutine splits the line into replies and
// asynchronous notices ($AT state changes, $AB boot), which signal
// Changes. Run sends the heartbeat and reopens the device, with backoff,
// when it vanishes or stops answering; a new link always starts with the
// EVSE asleep ($FS), and so does a reboot ($AB). If a notice shows the
// EVSE enabled while the controller wants it off (its front button was
// pressed, say), Run puts it back to sleep. If a step of Enable fails,
// the EVSE is put to sleep before the error is returned.
//
// Heartbeat supervision: at connect the driver sends "$SY interval 6",
// interval being SupervisionFactor (3) heartbeat periods rounded up to
// seconds (30 s by default), and Run sends a bare "$SY" pulse every
// Config.Heartbeat (10 s). If the wall controller dies, the EVSE notices
// the missing pulses and drops its current capacity to 6 A by itself.
// The firmware cannot be told to drop lower: it clamps the fallback current
// to J1772's 6 A minimum, so supervision limits power, it does not cut it.
// On the next pulse after such a fallback the EVSE answers $NK; the driver
// acknowledges ("$SY 165") and re-applies the controller's current limit.
package rapi
