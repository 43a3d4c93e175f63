// gowatch: a watcher program as a Go developer would write it, with the
// inotify system calls of the standard library's syscall package and nothing
// else. Built with CGO_ENABLED=0 it is a static binary: no dynamic loader, so
// no LD_PRELOAD shim can reach it; only genuine kernel events do (the
// rnotify-fuse view). The integration tests build it at test time
// (tests/testbed/real_programs.cc).
//
//	gowatch DIR
//
// watches DIR and every directory below it (new directories are added as
// they appear) and prints one line per event to stdout:
//
//	FLAG[,FLAG...]|relative/path|cookie
//
// with inotifywait's flag names (CREATE, MOVED_FROM, ISDIR, ...). The line
// "ready" comes once every watch of the initial tree is in place.
package main

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

const watchMask = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MODIFY | syscall.IN_CLOSE_WRITE |
	syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO | syscall.IN_ATTRIB | syscall.IN_DELETE_SELF |
	syscall.IN_MOVE_SELF

var flagNames = []struct {
	bit  uint32
	name string
}{
	{syscall.IN_ACCESS, "ACCESS"},
	{syscall.IN_MODIFY, "MODIFY"},
	{syscall.IN_ATTRIB, "ATTRIB"},
	{syscall.IN_CLOSE_WRITE, "CLOSE_WRITE"},
	{syscall.IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"},
	{syscall.IN_OPEN, "OPEN"},
	{syscall.IN_MOVED_FROM, "MOVED_FROM"},
	{syscall.IN_MOVED_TO, "MOVED_TO"},
	{syscall.IN_CREATE, "CREATE"},
	{syscall.IN_DELETE, "DELETE"},
	{syscall.IN_DELETE_SELF, "DELETE_SELF"},
	{syscall.IN_MOVE_SELF, "MOVE_SELF"},
	{syscall.IN_UNMOUNT, "UNMOUNT"},
	{syscall.IN_Q_OVERFLOW, "Q_OVERFLOW"},
	{syscall.IN_IGNORED, "IGNORED"},
	{syscall.IN_ISDIR, "ISDIR"},
}

func flags(mask uint32) string {
	var names []string
	for _, f := range flagNames {
		if mask&f.bit != 0 {
			names = append(names, f.name)
		}
	}
	return strings.Join(names, ",")
}

type watcher struct {
	fd   int
	root string
	dirs map[int32]string // watch descriptor -> path relative to root ("" for root)
	out  *bufio.Writer
}

func (w *watcher) add(rel string) error {
	wd, err := syscall.InotifyAddWatch(w.fd, filepath.Join(w.root, rel), watchMask)
	if err != nil {
		return err
	}
	w.dirs[int32(wd)] = rel
	return nil
}

// addTree watches rel and every directory below it. A directory that is gone
// by the time it is reached is skipped.
func (w *watcher) addTree(rel string) {
	filepath.WalkDir(filepath.Join(w.root, rel), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		r, _ := filepath.Rel(w.root, path)
		if r == "." {
			r = ""
		}
		if err := w.add(r); err != nil {
			os.Stderr.WriteString("gowatch: cannot watch " + path + ": " + err.Error() + "\n")
		}
		return nil
	})
}

func main() {
	if len(os.Args) != 2 {
		os.Stderr.WriteString("usage: gowatch DIR\n")
		os.Exit(2)
	}
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		os.Stderr.WriteString("gowatch: inotify_init1: " + err.Error() + "\n")
		os.Exit(1)
	}
	w := &watcher{fd: fd, root: os.Args[1], dirs: map[int32]string{}, out: bufio.NewWriter(os.Stdout)}
	if err := w.add(""); err != nil {
		os.Stderr.WriteString("gowatch: cannot watch " + w.root + ": " + err.Error() + "\n")
		os.Exit(1)
	}
	w.addTree("")
	w.out.WriteString("ready\n")
	w.out.Flush()

	buffer := make([]byte, 64*1024)
	for {
		n, err := syscall.Read(fd, buffer)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			os.Stderr.WriteString("gowatch: read: " + err.Error() + "\n")
			os.Exit(1)
		}
		for at := 0; at+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buffer[at]))
			nameBytes := buffer[at+syscall.SizeofInotifyEvent : at+syscall.SizeofInotifyEvent+int(ev.Len)]
			name := strings.TrimRight(string(nameBytes), "\x00")
			at += syscall.SizeofInotifyEvent + int(ev.Len)

			dir, known := w.dirs[ev.Wd]
			if ev.Mask&syscall.IN_Q_OVERFLOW != 0 {
				known, dir = true, ""
			}
			if !known {
				continue
			}
			rel := dir
			if name != "" {
				rel = filepath.Join(dir, name)
			}
			if ev.Mask&syscall.IN_IGNORED != 0 {
				delete(w.dirs, ev.Wd)
				continue
			}
			w.out.WriteString(flags(ev.Mask) + "|" + rel + "|" + strconv.FormatUint(uint64(ev.Cookie), 10) + "\n")
			if ev.Mask&syscall.IN_ISDIR != 0 && ev.Mask&(syscall.IN_CREATE|syscall.IN_MOVED_TO) != 0 {
				w.addTree(rel)
			}
		}
		w.out.Flush()
	}
}
