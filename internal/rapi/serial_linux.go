//go:build linux

package rapi

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

var baudRates = map[int]uint32{
	9600:   unix.B9600,
	19200:  unix.B19200,
	38400:  unix.B38400,
	57600:  unix.B57600,
	115200: unix.B115200,
	230400: unix.B230400,
}

// openSerial opens a serial device raw, 8N1, no flow control, at baud. The
// file is non-blocking underneath, so Go's poller serves reads and Close
// interrupts a blocked Read. Pending input is discarded: it belongs to
// whoever spoke on the line before.
func openSerial(path string, baud int) (*os.File, error) {
	speed, ok := baudRates[baud]
	if !ok {
		return nil, fmt.Errorf("rapi: unsupported baud rate %d", baud)
	}
	// O_NONBLOCK: a real port would otherwise block in open until carrier
	// detect, which an OpenEVSE header does not provide.
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("rapi: %w", err)
	}
	if err := withFd(f, func(fd int) error { return makeRaw(fd, speed) }); err != nil {
		f.Close()
		return nil, fmt.Errorf("rapi: set up %s: %w", path, err)
	}
	return f, nil
}

// withFd runs fn on f's descriptor without f.Fd, which would switch the
// file to blocking mode and take it out of the poller.
func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func makeRaw(fd int, speed uint32) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("get termios: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR |
		unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CSTOPB | unix.CRTSCTS | unix.CBAUD
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL | speed
	t.Ispeed, t.Ospeed = speed, speed
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("set termios: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH); err != nil {
		return fmt.Errorf("flush input: %w", err)
	}
	return nil
}
