package campaign

import (
	"encoding/json"
	"io"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/pgbb/pgbb/harness/scenario"
)

// requestJob returns the job a container request copies in, decoded.
func requestJob(t *testing.T, files []fileOf) Job {
	t.Helper()
	for _, f := range files {
		if f.path != containerJob {
			continue
		}
		var job Job
		if err := json.Unmarshal(f.data, &job); err != nil {
			t.Fatalf("the job file: %v", err)
		}
		return job
	}
	t.Fatalf("the request copies no job file into %s", containerJob)
	return Job{}
}

// fileOf is a file a container request copies in.
type fileOf struct {
	path, host string
	mode       int64
	data       []byte
}

// TestAgentRequestReader: with a reader, the agent's container gets the
// binary (executable by the other user), the job names it where it is,
// everything else of the job arrives as given, and the container may make
// a PID namespace with its own /proc (SYS_ADMIN, no AppArmor profile that
// forbids the mount). Without one, the job names none.
func TestAgentRequestReader(t *testing.T) {
	sc, err := scenario.Parse("s.json", []byte(`{"name": "s", "faults": ["stop"], "trials": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	job := Job{Scenarios: []scenario.Scenario{sc}, Seed: 42, Parallel: 2, Variant: "patched", Prefix: "/usr/local/pgsql",
		BuildTree: "/home/pgbuild/src", KeepFailing: 3, Scratch: "/dev/shm/x"}
	files := func(t *testing.T, reader string) ([]fileOf, *container.HostConfig) {
		t.Helper()
		req, err := agentRequest("img", "/build/pgbb-agent", reader, job, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []fileOf
		for _, f := range req.Files {
			fo := fileOf{path: f.ContainerFilePath, host: f.HostFilePath, mode: f.FileMode}
			if f.Reader != nil {
				if fo.data, err = io.ReadAll(f.Reader); err != nil {
					t.Fatal(err)
				}
			}
			out = append(out, fo)
		}
		hc := &container.HostConfig{}
		req.HostConfigModifier(hc)
		return out, hc
	}

	got, hc := files(t, "/build/pgbb-status")
	i := slices.IndexFunc(got, func(f fileOf) bool { return f.host == "/build/pgbb-status" })
	if i < 0 || got[i].path != containerReader || got[i].mode != 0o755 {
		t.Fatalf("the reader is not copied to %s with mode 0755: %+v", containerReader, got)
	}
	want := job
	want.ReaderBin = containerReader
	sent := requestJob(t, got)
	if sent.ReaderBin != containerReader || sent.Seed != want.Seed || sent.Parallel != want.Parallel || sent.Scratch != want.Scratch ||
		sent.KeepFailing != want.KeepFailing || len(sent.Scenarios) != 1 || sent.Scenarios[0].Name != "s" {
		t.Fatalf("the job sent is %+v, want %+v", sent, want)
	}
	if !slices.Contains(hc.CapAdd, "SYS_ADMIN") || !slices.Contains(hc.SecurityOpt, "apparmor:unconfined") {
		t.Fatalf("with a reader the container cannot unshare and mount /proc: caps %v, security %v", hc.CapAdd, hc.SecurityOpt)
	}

	got, _ = files(t, "")
	if slices.ContainsFunc(got, func(f fileOf) bool { return f.path == containerReader }) {
		t.Fatalf("no reader given, but one is copied: %+v", got)
	}
	if sent := requestJob(t, got); sent.ReaderBin != "" {
		t.Fatalf("no reader given, but the job names %q", sent.ReaderBin)
	}
}

// TestContainerPrivileges: SYS_ADMIN, no AppArmor profile and /dev/fuse
// only for a job that needs them.
func TestContainerPrivileges(t *testing.T) {
	kills := []scenario.Scenario{{Name: "k", Faults: []string{scenario.PlanKill}}}
	disk := []scenario.Scenario{{Name: "d", Faults: []string{scenario.PlanKill, scenario.PlanPowerLoss}}}
	for _, tc := range []struct {
		name             string
		scs              []scenario.Scenario
		reader, hostFUSE bool
		admin, fuse      bool
	}{
		{"kills only", kills, false, true, false, false},
		{"kills, the reader", kills, true, true, true, false},
		{"power loss", disk, false, true, true, true},
		{"power loss, no /dev/fuse", disk, false, false, false, false},
		{"power loss and the reader", disk, true, true, true, true},
	} {
		p := containerPrivileges(tc.scs, tc.reader, tc.hostFUSE)
		admin := slices.Contains(p.caps, "SYS_ADMIN")
		unconfined := slices.Contains(p.securityOpt, "apparmor:unconfined")
		if admin != tc.admin || unconfined != tc.admin || p.fuse != tc.fuse || !slices.Contains(p.caps, "SYS_PTRACE") {
			t.Errorf("%s: caps %v, security %v, fuse %t; want SYS_ADMIN and unconfined %t, fuse %t",
				tc.name, p.caps, p.securityOpt, p.fuse, tc.admin, tc.fuse)
		}
	}
}
