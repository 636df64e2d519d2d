package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"satwatt/internal/canbus"
	"satwatt/internal/clock"
	vp "satwatt/internal/vehicleprofile"
	"satwatt/internal/vehiclestate"
)

// canFlagHelp is shared by every command that takes a CAN source.
const canFlagHelp = "CAN source: IFACE (live SocketCAN, e.g. can0, vcan0), socketcan:IFACE, " +
	"candump:FILE or FILE.log (can-utils candump -l), gvret:FILE or FILE.csv (SavvyCAN/GVRET), " +
	"socketcand://HOST:PORT/BUS"

// badInputLogLimit is how many bad log lines are logged one by one; the rest
// are counted in the summary, so a corrupt file cannot flood the terminal.
const badInputLogLimit = 10

func runMonitor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("monitor", stderr)
	profile := fs.String("profile", "generic", "vehicle profile: a built-in name (see 'vehiclegw profiles') or a .toml file")
	dbcPath := fs.String("dbc", "", "DBC file to use instead of the profile's own")
	source := fs.String("can", "", canFlagHelp)
	asJSON := fs.Bool("json", false, "print one JSON object per line (state, event, summary) instead of text")
	speed := fs.Float64("speed", 1, "replay speed: 1 = as recorded, 10 = ten times faster, 0 = as fast as possible")
	loop := fs.Bool("loop", false, "replays: start over at the end")
	interval := fs.Duration("interval", time.Second, "how often to print the state (in the source's time)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *source == "" {
		return fmt.Errorf("%w: --can is required (%s)", errUsage, canFlagHelp)
	}
	if *interval <= 0 {
		return fmt.Errorf("%w: --interval must be positive", errUsage)
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	binding, err := vp.LoadBinding(*profile, *dbcPath)
	if err != nil {
		return err
	}
	for _, w := range binding.DB.Warnings {
		log.Debug("DBC warning", "warning", w.String())
	}
	out := &monitorOutput{w: stdout, json: *asJSON}
	tracker := vehiclestate.New(binding, out.event)

	var badLines int
	clk := clock.Real{}
	src, err := canbus.Open(ctx, *source, canbus.Options{
		Clock:  clk,
		Logger: log,
		Speed:  *speed,
		Loop:   *loop,
		OnBadInput: func(err error) {
			badLines++
			if badLines <= badInputLogLimit {
				log.Warn("skipped bad CAN input", "source", *source, "err", err)
			}
			if badLines == badInputLogLimit {
				log.Warn("further bad input is only counted", "source", *source)
			}
		},
	})
	if err != nil {
		return err
	}
	defer src.Close()
	log.Info("monitoring", "profile", binding.Profile.Name, "dbc", binding.DB.Source, "can", *source)

	spec, err := canbus.ParseSpec(*source)
	if err != nil {
		return err
	}
	live := spec.Kind != canbus.KindReplay
	var lastPrint time.Time
	var mu sync.Mutex // guards lastPrint between the frame loop and the idle ticker
	printAt := func(now time.Time) {
		out.state(tracker.Snapshot(now))
		lastPrint = now
	}
	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if live {
		// A live bus can fall silent (unplugged, interface lost); keep
		// printing so the gap shows as stale values.
		go func() {
			for {
				if clock.Sleep(loopCtx, clk, *interval) != nil {
					return
				}
				mu.Lock()
				if now := clk.Now(); now.Sub(lastPrint) >= *interval {
					printAt(now)
				}
				mu.Unlock()
			}
		}()
	}
	var f canbus.Frame
	for {
		err := src.Receive(loopCtx, &f)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && ctx.Err() != nil && live {
			// Ctrl-C or SIGTERM on a live bus: the summary still tells
			// what was seen.
			break
		}
		if err != nil {
			return err
		}
		tracker.Update(&f.Frame, f.Time)
		mu.Lock()
		if lastPrint.IsZero() || f.Time.Sub(lastPrint) >= *interval {
			printAt(f.Time)
		}
		mu.Unlock()
	}
	mu.Lock()
	printAt(f.Time)
	mu.Unlock()
	out.summary(tracker.Counters(), badLines, tracker.ChargedEnergyMWh())
	return nil
}

// monitorOutput prints states, events and the summary as text or JSON lines.
type monitorOutput struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

func (o *monitorOutput) writeJSON(kind string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		slog.Error("encode JSON", "err", err)
		return
	}
	// Splice the type in front so each line says what it is.
	fmt.Fprintf(o.w, "{\"type\":%q,%s\n", kind, b[1:])
}

func (o *monitorOutput) state(s vehiclestate.State) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		o.writeJSON("state", s)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  SOC %s %%", s.Time.Format("15:04:05.000"), fmtFloat(s.SOCPct, 1))
	kind := ""
	if s.PackEnergyKind != "" {
		kind = " " + s.PackEnergyKind
	}
	fmt.Fprintf(&b, "  pack %s kWh%s", fmtKWh(s.PackEnergyWh), kind)
	fmt.Fprintf(&b, "  left %s kWh", fmtKWh(s.EnergyRemainingWh))
	fmt.Fprintf(&b, "  %s V  %s A", fmtFloat(s.PackVoltageV, 2), fmtFloat(s.PackCurrentA, 1))
	fmt.Fprintf(&b, "  cable %s  door %s  charging %s", s.Cable, s.PortDoor, s.Charging)
	fmt.Fprintf(&b, "  power %s W  charged %d Wh", fmtInt(s.ChargePowerW), s.ChargedEnergyMWh/1000)
	if len(s.Stale) > 0 {
		fmt.Fprintf(&b, "  STALE: %s", strings.Join(s.Stale, ","))
	}
	fmt.Fprintln(o.w, b.String())
}

func (o *monitorOutput) event(e vehiclestate.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		o.writeJSON("event", e)
		return
	}
	fmt.Fprintf(o.w, "%s  EVENT %s (%s -> %s)\n", e.Time.Format("15:04:05.000"), strings.ReplaceAll(e.Kind, "_", " "), e.From, e.To)
}

type summary struct {
	vehiclestate.Counters
	BadLines           int               `json:"bad_lines"`
	ChargedEnergyMWh   int64             `json:"charged_energy_mwh"`
	LengthMismatchByID map[string]uint64 `json:"length_mismatch_by_id"`
	UnknownMuxByID     map[string]uint64 `json:"unknown_mux_by_id"`
}

func (o *monitorOutput) summary(c vehiclestate.Counters, badLines int, mwh int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := summary{Counters: c, BadLines: badLines, ChargedEnergyMWh: mwh, LengthMismatchByID: map[string]uint64{}, UnknownMuxByID: map[string]uint64{}}
	for id, n := range c.LengthMismatchByID {
		s.LengthMismatchByID[fmt.Sprintf("0x%X", id)] = n
	}
	for id, n := range c.UnknownMuxByID {
		s.UnknownMuxByID[fmt.Sprintf("0x%X", id)] = n
	}
	if o.json {
		o.writeJSON("summary", s)
		return
	}
	fmt.Fprintf(o.w, "summary: %d frames, %d of unknown IDs, %d bad lines skipped\n", c.Frames, c.UnknownID, badLines)
	fmt.Fprintf(o.w, "  frames whose length differs from the DBC: %d%s\n", c.LengthMismatch, byID(c.LengthMismatchByID))
	fmt.Fprintf(o.w, "  frames with a multiplexor value the DBC does not list: %d%s\n", c.UnknownMux, byID(c.UnknownMuxByID))
	fmt.Fprintf(o.w, "  values outside their signal's DBC range (not used): %d\n", c.OutOfRange)
	fmt.Fprintf(o.w, "  frames of the gateway's own status messages (a running gateway, or another node spoofing it): %d\n", c.ForeignStatus)
}

func byID(m map[uint32]uint64) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, id := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("0x%X: %d", id, m[id]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func fmtFloat(v *float64, decimals int) string {
	if v == nil {
		return "?"
	}
	return fmt.Sprintf("%.*f", decimals, *v)
}

func fmtInt(v *int64) string {
	if v == nil {
		return "?"
	}
	return fmt.Sprintf("%d", *v)
}

func fmtKWh(wh *int64) string {
	if wh == nil {
		return "?"
	}
	return fmt.Sprintf("%d.%01d", *wh/1000, (*wh%1000)/100)
}
