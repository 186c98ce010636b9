package build

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
)

// isProjectTag says whether an image tag is one of the project's.
func isProjectTag(t string) bool {
	return strings.HasPrefix(t, ImageRepo+":") || strings.HasPrefix(t, BaseImageRepo+":")
}

// RemoveImages removes the project's images from the Docker engine: those
// tagged ImageRepo or BaseImageRepo, their untagged build layers, and the
// untagged layers that interrupted builds left on top of them. Images that
// carry any other tag are kept. It returns how many it removed. Without an
// engine there is nothing to remove.
func RemoveImages(ctx context.Context, log io.Writer) (int, error) {
	DisableRyuk()
	cli, err := dockerClient(ctx)
	if err != nil {
		return 0, nil
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		return 0, nil
	}
	list, err := cli.ImageList(ctx, client.ImageListOptions{All: true})
	if err != nil {
		return 0, fmt.Errorf("list images: %w", err)
	}
	set, tags := projectImages(list.Items)
	n := 0
	for _, id := range set {
		if _, err := cli.ImageRemove(ctx, id, client.ImageRemoveOptions{Force: true}); err != nil {
			if isNotFound(err) {
				continue
			}
			return n, fmt.Errorf("remove image %s %v: %w", shortID(id), tags[id], err)
		}
		if len(tags[id]) > 0 {
			fmt.Fprintf(log, "pgbb: removed image %s\n", strings.Join(tags[id], " "))
		}
		n++
	}
	if n > 0 {
		fmt.Fprintf(log, "pgbb: removed %d images and layers\n", n)
	}
	return n, nil
}

// projectImages returns the images to remove, children before parents:
// those tagged as the project's (and nothing else), their untagged
// ancestors (build layers) and descendants (interrupted builds); with
// every image's tags.
func projectImages(items []image.Summary) ([]string, map[string][]string) {
	parent := map[string]string{}
	children := map[string][]string{}
	foreign := map[string]bool{} // carries a tag that is not the project's
	tags := map[string][]string{}
	var set []string
	in := map[string]bool{}
	add := func(id string) bool {
		if in[id] || foreign[id] {
			return false
		}
		in[id] = true
		set = append(set, id)
		return true
	}
	for _, img := range items {
		parent[img.ID] = img.ParentID
		children[img.ParentID] = append(children[img.ParentID], img.ID)
		for _, t := range img.RepoTags {
			if t == "<none>:<none>" {
				continue
			}
			tags[img.ID] = append(tags[img.ID], t)
			if !isProjectTag(t) {
				foreign[img.ID] = true
			}
		}
	}
	for _, img := range items {
		for _, t := range img.RepoTags {
			if isProjectTag(t) && !foreign[img.ID] {
				add(img.ID)
			}
		}
	}
	// Untagged ancestors (build layers) and descendants (interrupted builds).
	for i := 0; i < len(set); i++ {
		id := set[i]
		if p := parent[id]; p != "" && len(tags[p]) == 0 {
			add(p)
		}
		for _, c := range children[id] {
			add(c)
		}
	}
	depth := func(id string) int {
		d := 0
		for p := parent[id]; p != ""; p = parent[p] {
			d++
		}
		return d
	}
	sort.SliceStable(set, func(i, j int) bool { return depth(set[i]) > depth(set[j]) })
	return set, tags
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}
