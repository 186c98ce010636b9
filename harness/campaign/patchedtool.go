package campaign

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pgbb/pgbb/harness/build"
)

// PatchFiles lists the patches of a directory, the files ending in
// .patch, in name order; a directory without one is an error.
func PatchFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("patches: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".patch") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("patches: no *.patch in %s", dir)
	}
	slices.Sort(out)
	return out, nil
}

// BuildPatchedTool builds the command harness/cmd/NAME as BuildTool does,
// but from a copy of the module at root (go.mod, go.sum and harness/)
// with patches applied in order (unified diffs against the repository,
// paths a/... and b/..., as git diff writes them): a known-bad variant of
// a tool, such as those of pgbb-run in harness/testdata/knownbad/wrapper,
// is built so. The tree at root is never changed, and the binary has no
// switch of its own: what it does wrong is in its code. The copy is
// removed before it returns.
func BuildPatchedTool(ctx context.Context, root, dir, name string, patches []string) (string, error) {
	src, err := os.MkdirTemp("", "pgbb-patched-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	defer os.RemoveAll(src)
	if err := copyModule(root, src); err != nil {
		return "", fmt.Errorf("build %s: copy the module: %w", name, err)
	}
	for _, p := range patches {
		if err := applyPatch(ctx, src, p); err != nil {
			return "", fmt.Errorf("build %s: %w", name, err)
		}
	}
	return BuildTool(ctx, src, dir, name)
}

// applyPatch applies the patch file p to the tree at dir, all of it or
// nothing.
func applyPatch(ctx context.Context, dir, p string) error {
	abs, err := filepath.Abs(p)
	if err != nil {
		return err
	}
	// git apply takes no fuzz: a patch that no longer fits the code fails
	// here rather than building something else. The ceiling keeps a
	// repository around the copy from being taken for its own.
	cmd := exec.CommandContext(ctx, "git", "apply", "--whitespace=nowarn", abs)
	cmd.Dir = dir
	// LC_ALL=C: its messages in English, whatever the user's locale.
	cmd.Env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apply %s: %w\n%s", p, err, out)
	}
	return nil
}

// copyModule copies go.mod, go.sum and the harness directory of the
// module at root into dst (os.CopyFS: regular files and directories; the
// tree holds no symbolic link).
func copyModule(root, dst string) error {
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, 0o644); err != nil {
			return err
		}
	}
	return os.CopyFS(filepath.Join(dst, "harness"), os.DirFS(filepath.Join(root, "harness")))
}

// BuildToolDir builds the command harness/cmd/NAME of the repository this
// process runs in, with patches applied to a copy of it if any
// (BuildPatchedTool), into a new temporary directory of the given mode,
// and returns the binary's path; the caller removes its directory.
func BuildToolDir(ctx context.Context, name string, mode os.FileMode, patches ...string) (string, error) {
	root, err := build.FindRepoRoot(".")
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", name+"-")
	if err != nil {
		return "", err
	}
	var bin string
	if len(patches) > 0 {
		bin, err = BuildPatchedTool(ctx, root, tmp, name, patches)
	} else {
		bin, err = BuildTool(ctx, root, tmp, name)
	}
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return bin, nil
}
