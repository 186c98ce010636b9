package build

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/moby/moby/client"
)

// RemoveImages removes the project's images (ImageRepo and BaseImageRepo
// tags) from the Docker engine and returns how many it removed. Without an
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
	list, err := cli.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return 0, fmt.Errorf("list images: %w", err)
	}
	n := 0
	for _, img := range list.Items {
		for _, t := range img.RepoTags {
			if strings.HasPrefix(t, ImageRepo+":") || strings.HasPrefix(t, BaseImageRepo+":") {
				if _, err := cli.ImageRemove(ctx, t, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
					return n, fmt.Errorf("remove image %s: %w", t, err)
				}
				fmt.Fprintf(log, "pgbb: removed image %s\n", t)
				n++
			}
		}
	}
	return n, nil
}
