// Package build builds stock and patched PostgreSQL, in a container image
// (Dockerfile.pgbuild driven through testcontainers-go) or natively into
// the repository's cache directory, and runs upstream TAP suites against
// the result.
package build

import (
	"fmt"
	"strings"

	"github.com/pgbb/pgbb/harness/pgsrc"
)

// Variant says whether the project's patches are applied.
type Variant string

// The supported variants.
const (
	// Stock is the release as published.
	Stock Variant = "stock"
	// Patched is the release with a patch series applied in name order.
	Patched Variant = "patched"
)

// Variants lists the supported variants.
func Variants() []Variant { return []Variant{Stock, Patched} }

// ParseVariant checks a variant name, with an error listing the supported
// ones.
func ParseVariant(s string) (Variant, error) {
	for _, v := range Variants() {
		if string(v) == s {
			return v, nil
		}
	}
	var names []string
	for _, v := range Variants() {
		names = append(names, string(v))
	}
	return "", fmt.Errorf("unknown variant %q: supported variants are %s", s, strings.Join(names, ", "))
}

// Spec says what to build.
type Spec struct {
	// Major is the PostgreSQL major version (see pgsrc.Releases).
	Major int
	// Variant is stock or patched.
	Variant Variant
	// PatchDir overrides the patch series of a patched build (forks,
	// known-bad variants); empty means patches/pg<Major> in the repository.
	PatchDir string
	// Name labels a build from a PatchDir override in logs and in the
	// image's org.pgbb.variant label (e.g. "bad-nosync"); empty means the
	// variant name. Tags and cache names hold only the variant and the key,
	// so the same patches under two names share one build.
	Name string
}

// Validate checks the version and the variant.
func (s Spec) Validate() error {
	if _, err := pgsrc.Lookup(s.Major); err != nil {
		return err
	}
	if _, err := ParseVariant(string(s.Variant)); err != nil {
		return err
	}
	if s.Variant == Stock && s.PatchDir != "" {
		return fmt.Errorf("a stock build takes no patch directory (got %s)", s.PatchDir)
	}
	return nil
}

// label names the build in logs.
func (s Spec) label() string {
	if s.Name != "" {
		return s.Name
	}
	return string(s.Variant)
}

// String gives e.g. "PostgreSQL 18 patched".
func (s Spec) String() string {
	return fmt.Sprintf("PostgreSQL %d %s", s.Major, s.label())
}
