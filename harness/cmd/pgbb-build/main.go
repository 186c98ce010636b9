// Command pgbb-build builds stock or patched PostgreSQL with the harness's
// container or native backend and prints where the result is.
//
//	pgbb-build -pg 18 -variant patched [-patches DIR] [-backend auto|container|native] [-pgsrc PATH] [-tap]
//	pgbb-build -clean
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgbb/pgbb/harness/build"
	"github.com/pgbb/pgbb/harness/pgsrc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "pgbb-build: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		pg      = flag.String("pg", "18", "PostgreSQL major version: "+pgsrc.SupportedMajors())
		variant = flag.String("variant", string(build.Patched), "stock or patched")
		patches = flag.String("patches", "", "patch series directory (default patches/pg<version>); for forks and known-bad variants")
		name    = flag.String("name", "", "label of a -patches build in image tags and cache names")
		backend = flag.String("backend", envOr("BACKEND", build.BackendAuto), "auto, container or native (env BACKEND)")
		src     = flag.String("pgsrc", os.Getenv("PGSRC"), "build from this PostgreSQL source tree or tarball (env PGSRC)")
		tap     = flag.Bool("tap", false, "run the pg_basebackup and pg_verifybackup TAP suites after building")
		verbose = flag.Bool("v", false, "stream the full build output")
		clean   = flag.Bool("clean", false, "remove the project's images (pgbb-pg, pgbb-base) and exit")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", flag.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *clean {
		_, err := build.RemoveImages(ctx, os.Stderr)
		return err
	}

	major, err := pgsrc.ParseMajor(*pg)
	if err != nil {
		return err
	}
	v, err := build.ParseVariant(*variant)
	if err != nil {
		return err
	}
	opts := append(build.FromEnv(),
		build.WithBackend(*backend),
		build.WithPGSRC(*src),
		build.WithLog(os.Stderr),
		build.WithVerbose(*verbose || os.Getenv("PGBB_VERBOSE") == "1"),
	)
	b, err := build.New(ctx, opts...)
	if err != nil {
		return err
	}
	spec := build.Spec{Major: major, Variant: v, PatchDir: *patches, Name: *name}
	res, err := b.Build(ctx, spec)
	if err != nil {
		return err
	}
	fmt.Printf("backend:    %s\n", res.Backend)
	fmt.Printf("version:    %s (%s)\n", res.Version, res.Spec.Variant)
	fmt.Printf("source:     %s\n", res.Source)
	fmt.Printf("key:        %s\n", res.Key)
	if res.Image != "" {
		fmt.Printf("image:      %s\n", res.Image)
	}
	fmt.Printf("prefix:     %s\n", res.Prefix)
	fmt.Printf("bindir:     %s\n", res.BinDir)
	fmt.Printf("build tree: %s\n", res.BuildTree)
	fmt.Printf("user:       %s\n", res.User)
	fmt.Printf("cached:     %t (%s)\n", res.Cached, res.Elapsed.Round(1e8))
	if *tap {
		if _, err := b.RunTAP(ctx, res, os.Stdout); err != nil {
			return err
		}
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
