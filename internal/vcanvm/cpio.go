package vcanvm

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// File modes in the form cpio stores them (the stat(2) st_mode bits); Go's
// fs.FileMode uses its own layout, so the kernel's values are spelt out.
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// newcWriter writes the "new ASCII" (newc) cpio format, the only one the
// kernel accepts for an initramfs.
type newcWriter struct {
	w   io.Writer
	ino uint32
	err error
}

// header writes one member's header and name. Every member gets its own
// inode number, so the kernel never mistakes two files for hard links.
func (c *newcWriter) header(name string, mode uint32, size int64, rdevMajor, rdevMinor uint32) {
	if c.err != nil {
		return
	}
	if size > 0xffffffff {
		c.err = fmt.Errorf("cpio: %s is too large for newc (%d bytes)", name, size)
		return
	}
	c.ino++
	nlink := uint32(1)
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	name = strings.TrimPrefix(name, "/")
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad(int64(len(hdr) + len(name) + 1))
}

func (c *newcWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

// pad aligns the stream to 4 bytes after n bytes of a header or body.
func (c *newcWriter) pad(n int64) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *newcWriter) dir(name string) error {
	c.header(name, modeDir|0o755, 0, 0, 0)
	return c.err
}

func (c *newcWriter) bytes(name string, perm uint32, data []byte) error {
	c.header(name, modeRegular|perm, int64(len(data)), 0, 0)
	c.write(data)
	c.pad(int64(len(data)))
	return c.err
}

// file copies a host file into the archive, following symlinks, so shared
// libraries land as real files at the path the loader asks for.
func (c *newcWriter) file(name string, perm uint32, hostPath string) error {
	if c.err != nil {
		return c.err
	}
	f, err := os.Open(hostPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	c.header(name, modeRegular|perm, st.Size(), 0, 0)
	if c.err != nil {
		return c.err
	}
	n, err := io.Copy(c.w, f)
	if err != nil {
		c.err = err
		return err
	}
	if n != st.Size() {
		c.err = fmt.Errorf("cpio: %s changed size while being archived", hostPath)
		return c.err
	}
	c.pad(n)
	return c.err
}

func (c *newcWriter) symlink(name, target string) error {
	c.header(name, modeSymlink|0o777, int64(len(target)), 0, 0)
	c.write([]byte(target))
	c.pad(int64(len(target)))
	return c.err
}

func (c *newcWriter) charDev(name string, perm, major, minor uint32) error {
	c.header(name, modeCharDev|perm, 0, major, minor)
	return c.err
}

// close writes the trailer member that ends every cpio archive.
func (c *newcWriter) close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	return c.err
}
