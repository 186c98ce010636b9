// Package cluster runs the PostgreSQL servers of the crash harness: the
// source cluster that backups are taken from (initdb with data checksums,
// reachable over loopback TCP and a private unix socket only, trust
// authentication only there), its dataset, and servers started on restored
// copies of backups.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbb/pgbb/harness/osuser"
	"github.com/pgbb/pgbb/harness/proc"
)

// ErrStart marks a server that could not start; the error text carries the
// tail of the server log.
var ErrStart = errors.New("server did not start")

// Cluster is one PostgreSQL data directory and, while started, its server.
type Cluster struct {
	// BinDir holds the PostgreSQL programs.
	BinDir string
	// Acct owns the data directory and runs the server.
	Acct osuser.Account
	// DataDir is the data directory.
	DataDir string
	// SocketDir is the server's private unix socket directory.
	SocketDir string
	// LogFile is the server log.
	LogFile string
	// Port is the server's port (also names the unix socket).
	Port int
	// TCP says whether the server listens on 127.0.0.1 as well.
	TCP bool
	// Tablespaces are the tablespace directories the dataset created.
	Tablespaces []string
	// Settings are extra server settings (name=value) given on every
	// start, over postgresql.conf.
	Settings []string
	// GroupAccess makes initdb allow group access to the data directory,
	// so that pg_basebackup of this server creates group-readable files
	// (and status files) for readers in the owner's group.
	GroupAccess bool

	running bool
}

// Option configures a cluster.
type Option func(*Cluster)

// WithTCP makes the server listen on 127.0.0.1 (replication clients such
// as pg_basebackup connect there); otherwise only the unix socket.
func WithTCP(on bool) Option { return func(c *Cluster) { c.TCP = on } }

// WithSettings gives the server extra settings (name=value) on every
// start, for example fsync=off for a throwaway server whose durability no
// check depends on.
func WithSettings(settings ...string) Option {
	return func(c *Cluster) { c.Settings = append(c.Settings, settings...) }
}

// WithGroupAccess sets GroupAccess.
func WithGroupAccess(on bool) Option { return func(c *Cluster) { c.GroupAccess = on } }

// New describes a cluster whose files live under dir: dir/data (unless
// dataDir is given), dir/sock, dir/server.log. Nothing is created.
func New(binDir string, acct osuser.Account, dir, dataDir string, opts ...Option) *Cluster {
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	c := &Cluster{
		BinDir: binDir, Acct: acct, DataDir: dataDir,
		SocketDir: filepath.Join(dir, "sock"), LogFile: filepath.Join(dir, "server.log"),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// bin returns the path of a PostgreSQL program.
func (c *Cluster) bin(name string) string { return filepath.Join(c.BinDir, name) }

// Run runs a PostgreSQL program as the cluster's account.
func (c *Cluster) Run(ctx context.Context, name string, args ...string) (string, error) {
	return proc.Run(ctx, c.Acct, nil, append([]string{c.bin(name)}, args...)...)
}

// Init runs initdb with data checksums and writes the server settings:
// WAL for replication, fsync on (a durability harness never turns it
// off), trust authentication for local and 127.0.0.1 connections only.
func (c *Cluster) Init(ctx context.Context) error {
	parent := filepath.Dir(c.DataDir)
	if err := c.Acct.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("init cluster: %w", err)
	}
	if err := c.Acct.CheckReachable(c.DataDir); err != nil {
		return fmt.Errorf("init cluster: %w", err)
	}
	if err := c.Acct.MkdirAll(c.SocketDir, 0o700); err != nil {
		return fmt.Errorf("init cluster: %w", err)
	}
	args := []string{"--data-checksums", "--no-instructions", "--auth=trust",
		"--username=postgres", "--encoding=UTF8", "--locale=C", "-D", c.DataDir}
	if c.GroupAccess {
		args = append(args, "--allow-group-access")
	}
	if _, err := c.Run(ctx, "initdb", args...); err != nil {
		return fmt.Errorf("initdb %s: %w", c.DataDir, err)
	}
	conf := `
# pgbb crash harness
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
max_wal_senders = 16
max_replication_slots = 16
shared_buffers = 32MB
max_wal_size = 512MB
checkpoint_timeout = 30min
wal_sender_timeout = 60s
log_min_messages = warning
log_line_prefix = '%m [%p] '
`
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("init cluster: %w", err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("init cluster: postgresql.conf: %w", err)
	}
	hba := `# pgbb crash harness: trust on the private socket and loopback only
local   all           all                 trust
local   replication   all                 trust
host    all           all   127.0.0.1/32  trust
host    replication   all   127.0.0.1/32  trust
`
	if err := c.Acct.WriteFile(filepath.Join(c.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("init cluster: pg_hba.conf: %w", err)
	}
	return nil
}

// Start starts the server and waits until it accepts connections. With
// TCP, a port is chosen at random and another one tried when the server
// says it is in use; a unix-socket-only server keeps Port (default 5432),
// since its socket directory is private. A server that does not start is
// an ErrStart error with the log's tail.
func (c *Cluster) Start(ctx context.Context, timeout time.Duration) error {
	if err := c.Acct.MkdirAll(c.SocketDir, 0o700); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	tries := 1
	if c.TCP {
		tries = 8
	} else if c.Port == 0 {
		c.Port = 5432
	}
	var lastErr error
	for i := 0; i < tries; i++ {
		if c.TCP && (i > 0 || c.Port == 0) {
			c.Port = freePort()
		}
		err := c.startOnce(ctx, timeout)
		if err == nil {
			c.running = true
			return nil
		}
		lastErr = err
		if ctx.Err() != nil || !strings.Contains(err.Error(), "already in use") {
			break
		}
	}
	return lastErr
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort() int {
	for {
		p := 20000 + rand.IntN(30000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			l.Close()
			return p
		}
	}
}

func (c *Cluster) startOnce(ctx context.Context, timeout time.Duration) error {
	listen := "''"
	if c.TCP {
		listen = "127.0.0.1"
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=%s -c unix_socket_directories='%s'", c.Port, listen, c.SocketDir)
	for _, kv := range c.Settings {
		opts += " -c " + kv
	}
	// The log is truncated per start so its tail explains this start.
	c.Acct.WriteFile(c.LogFile, nil, 0o644)
	_, err := c.Run(ctx, "pg_ctl", "start", "-w", "-t", strconv.Itoa(int(timeout.Seconds())),
		"-D", c.DataDir, "-l", c.LogFile, "-o", opts)
	if err == nil {
		return nil
	}
	// pg_ctl may have left a postmaster behind that never became ready.
	c.stopQuietly()
	logText, _ := os.ReadFile(c.LogFile)
	return fmt.Errorf("%w: %s (log %s):\n%s", ErrStart, c.DataDir, c.LogFile, proc.Tail(string(logText), 12))
}

// Stop stops the server: mode "fast" or "immediate". An immediate stop is
// a crash of the server (fault plan server-stop).
func (c *Cluster) Stop(ctx context.Context, mode string) error {
	_, err := c.Run(ctx, "pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", c.DataDir)
	if err != nil {
		if !c.postmasterAlive() {
			c.running = false
			return nil
		}
		c.stopQuietly()
		return fmt.Errorf("stop server %s: %w", c.DataDir, err)
	}
	c.running = false
	return nil
}

// Running says whether the server was started and not stopped.
func (c *Cluster) Running() bool { return c.running }

// postmasterPID reads the postmaster's pid from postmaster.pid.
func (c *Cluster) postmasterPID() int {
	data, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

func (c *Cluster) postmasterAlive() bool {
	pid := c.postmasterPID()
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// stopQuietly makes sure no server is left running: SIGQUIT (immediate
// shutdown), then SIGKILL of the postmaster and its children.
func (c *Cluster) stopQuietly() {
	pid := c.postmasterPID()
	if pid <= 0 {
		return
	}
	syscall.Kill(pid, syscall.SIGQUIT)
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		for _, ch := range proc.Children(pid) {
			syscall.Kill(ch, syscall.SIGKILL)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	c.running = false
}

// Cleanup stops the server if it runs, with a fresh context so that it
// also works after the campaign's context was cancelled (Ctrl-C).
func (c *Cluster) Cleanup() {
	if !c.running && !c.postmasterAlive() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Stop(ctx, "immediate"); err != nil {
		c.stopQuietly()
	}
}

// ConnString returns a libpq/pgx connection string for database db: over
// TCP when the server listens there, else the unix socket.
func (c *Cluster) ConnString(db string) string {
	host := c.SocketDir
	if c.TCP {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable connect_timeout=10", host, c.Port, db)
}

// Host returns the host pg_basebackup should connect to.
func (c *Cluster) Host() string {
	if c.TCP {
		return "127.0.0.1"
	}
	return c.SocketDir
}

// Connect opens one connection to database db.
func (c *Cluster) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.ConnString(db))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.DataDir, err)
	}
	return conn, nil
}
