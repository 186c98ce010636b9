package powerfs

import (
	"fmt"
	"path"
	"strings"
	"syscall"
	"time"
)

// OpKind is a kind of file-system operation the layer counts, logs, and
// can fail or crash at.
type OpKind int

// Operation kinds.
const (
	// OpOpen is the open of an existing file (not a create).
	OpOpen OpKind = iota + 1
	// OpCreate creates a regular file.
	OpCreate
	// OpMkdir creates a directory.
	OpMkdir
	// OpSymlink creates a symbolic link.
	OpSymlink
	// OpLink adds a hard link.
	OpLink
	// OpWrite writes to a file.
	OpWrite
	// OpTruncate changes a file's size.
	OpTruncate
	// OpFsync is fsync or fdatasync of a file.
	OpFsync
	// OpFsyncDir is fsync of a directory.
	OpFsyncDir
	// OpRename renames.
	OpRename
	// OpUnlink removes a file's name.
	OpUnlink
	// OpRmdir removes a directory.
	OpRmdir
	numKinds
)

var kindNames = [...]string{
	OpOpen: "open", OpCreate: "create", OpMkdir: "mkdir", OpSymlink: "symlink", OpLink: "link",
	OpWrite: "write", OpTruncate: "truncate", OpFsync: "fsync", OpFsyncDir: "fsyncdir",
	OpRename: "rename", OpUnlink: "unlink", OpRmdir: "rmdir",
}

// String returns the kind's name as used in scenarios and logs.
func (k OpKind) String() string {
	if k > 0 && k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("op(%d)", int(k))
}

// ParseOpKind returns the kind of a name ("fsync", "rename", ...).
func ParseOpKind(s string) (OpKind, error) {
	for k := OpOpen; k < numKinds; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown operation %q: operations are %s", s, strings.Join(OpKindNames(), ", "))
}

// OpKindNames lists every operation kind's name.
func OpKindNames() []string {
	var out []string
	for k := OpOpen; k < numKinds; k++ {
		out = append(out, kindNames[k])
	}
	return out
}

// Op is one logged operation.
type Op struct {
	// Seq numbers every logged operation of the mount from 1.
	Seq int `json:"seq"`
	// Kind is the operation; N numbers the operations of this kind from 1.
	Kind OpKind `json:"-"`
	N    int    `json:"n"`
	// KindName is Kind's name (for JSON).
	KindName string `json:"op"`
	// Path is the file's path relative to the root ("." for the root);
	// NewPath is a rename's or link's new path.
	Path    string `json:"path"`
	NewPath string `json:"new_path,omitempty"`
	// Off and Len are a write's range, or a truncate's new size (Off).
	Off int64 `json:"off,omitempty"`
	Len int64 `json:"len,omitempty"`
	// Write says an open asked for write access.
	Write bool `json:"write,omitempty"`
	// PID is the calling process.
	PID uint32 `json:"pid,omitempty"`
	// At is the time since the file system was made.
	At time.Duration `json:"at_ns"`
	// Errno is the error the caller got, 0 for success.
	Errno syscall.Errno `json:"errno,omitempty"`
	// Injected says Errno came from a fault rule or a crash point.
	Injected bool `json:"injected,omitempty"`
	// Crash is "before" or "after" when the power was cut at this op.
	Crash string `json:"crash,omitempty"`

	// What the operation changed, for a replay of the log (Replayer).
	// Ino is the inode operated on: the one made by a create, mkdir or
	// symlink, the one written, truncated, opened, fsynced, linked,
	// renamed or removed.
	Ino uint64 `json:"ino,omitempty"`
	// Dir and Name are the directory and name a create, mkdir, symlink,
	// link, unlink, rmdir or rename (its source) changed; NewDir and
	// NewName a rename's target, Flags its flags.
	Dir     uint64 `json:"dir,omitempty"`
	Name    string `json:"name,omitempty"`
	NewDir  uint64 `json:"new_dir,omitempty"`
	NewName string `json:"new_name,omitempty"`
	Flags   uint32 `json:"flags,omitempty"`
	// Target is a symlink's target.
	Target string `json:"target,omitempty"`
	// Perm, UID and GID are the attributes of the inode a create, mkdir
	// or symlink made, or of the inode an fsync made durable.
	Perm uint32 `json:"perm,omitempty"`
	UID  uint32 `json:"uid,omitempty"`
	GID  uint32 `json:"gid,omitempty"`
	// Trunc says an open truncated the file (O_TRUNC).
	Trunc bool `json:"trunc,omitempty"`
	// data is what a write wrote, kept when the file system journals
	// (see Journal).
	data []byte
}

// Data returns the bytes a write wrote, when the file system kept them
// (Journal): a slice of the log, not to be modified.
func (o Op) Data() []byte { return o.data }

// String renders the op for logs.
func (o Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s[%d] %s", o.Seq, o.Kind, o.N, o.Path)
	if o.NewPath != "" {
		fmt.Fprintf(&b, " -> %s", o.NewPath)
	}
	if o.Kind == OpWrite {
		fmt.Fprintf(&b, " [%d,+%d)", o.Off, o.Len)
	}
	if o.Kind == OpTruncate {
		fmt.Fprintf(&b, " size=%d", o.Off)
	}
	if o.Errno != 0 {
		fmt.Fprintf(&b, ": %v", o.Errno)
		if o.Injected {
			b.WriteString(" (injected)")
		}
	}
	if o.Crash != "" {
		fmt.Fprintf(&b, " [power loss %s]", o.Crash)
	}
	return b.String()
}

// Rule fails matching operations with an errno. Rules can be changed
// while mounted ([FS.SetRules], [FS.AddRule]).
type Rule struct {
	// Op is the kind of operation the rule fails.
	Op OpKind `json:"op"`
	// Path, when not empty, is a path.Match pattern: without a slash it is
	// matched against the file's base name, with one against its whole
	// path relative to the root (for a rename, either name matches).
	Path string `json:"path,omitempty"`
	// ForWrite limits an OpOpen rule to opens with write access (the
	// fsync pass of pg_basebackup opens files O_RDWR; its pre-sync pass
	// O_RDONLY).
	ForWrite bool `json:"for_write,omitempty"`
	// Nth is the first matching operation that fails, from 1 (0 means 1).
	Nth int `json:"nth,omitempty"`
	// Times is how many matching operations fail from the Nth on; 0 means
	// every one.
	Times int `json:"times,omitempty"`
	// Errno is the error; 0 means EIO.
	Errno syscall.Errno `json:"errno,omitempty"`
}

// String renders the rule.
func (r Rule) String() string {
	var b strings.Builder
	e := r.Errno
	if e == 0 {
		e = syscall.EIO
	}
	fmt.Fprintf(&b, "%s on %s", errnoName(e), r.Op)
	if r.ForWrite {
		b.WriteString(" for write")
	}
	if r.Path != "" {
		fmt.Fprintf(&b, " of %s", r.Path)
	}
	n := r.Nth
	if n < 1 {
		n = 1
	}
	switch r.Times {
	case 0:
		fmt.Fprintf(&b, " from #%d on", n)
	case 1:
		fmt.Fprintf(&b, " at #%d", n)
	default:
		fmt.Fprintf(&b, " at #%d-#%d", n, n+r.Times-1)
	}
	return b.String()
}

// errnoName names the errnos rules use.
func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EIO:
		return "EIO"
	case syscall.ENOSPC:
		return "ENOSPC"
	case syscall.EACCES:
		return "EACCES"
	case syscall.EROFS:
		return "EROFS"
	case syscall.EDQUOT:
		return "EDQUOT"
	}
	return fmt.Sprintf("errno %d (%v)", int(e), e)
}

// matches says whether the rule's kind, path and flags fit an operation.
func (r *Rule) matches(kind OpKind, paths []string, write bool) bool {
	if r.Op != kind {
		return false
	}
	if r.ForWrite && !write {
		return false
	}
	if r.Path == "" {
		return true
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		subject := p
		if !strings.Contains(r.Path, "/") {
			subject = path.Base(p)
		}
		if ok, _ := path.Match(r.Path, subject); ok {
			return true
		}
	}
	return false
}

// ruleState is a rule and how many operations it has matched.
type ruleState struct {
	Rule
	matched int
	fired   int
}

// CrashPoint cuts the power at the Nth operation of a kind: before it is
// applied (the caller gets EIO) or right after.
type CrashPoint struct {
	// Op is the kind of operation counted.
	Op OpKind `json:"op"`
	// N is the operation's number among those of its kind, from 1.
	N int `json:"n"`
	// After applies the operation before the power goes.
	After bool `json:"after,omitempty"`
}

// String renders the crash point.
func (c CrashPoint) String() string {
	when := "before"
	if c.After {
		when = "after"
	}
	return fmt.Sprintf("power loss %s %s #%d", when, c.Op, c.N)
}
