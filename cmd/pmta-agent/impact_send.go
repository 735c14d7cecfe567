package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/pmta-agent/pmta-agent/agent"
	"github.com/pmta-agent/pmta-agent/agent/config"
	"github.com/pmta-agent/pmta-agent/agent/engine"
	"github.com/pmta-agent/pmta-agent/agent/impact"
)

// impactSendStall is how long `impact -send` waits on a sink that takes
// none of its points, as `once -sinks` does by default.
const impactSendStall = 30 * time.Second

// impactPoints are rep's pmta_impact points as the pipeline makes them:
// the server and static tags of cfg, every value made safe — what the
// running agent writes for the same change, so either overwrites the other.
func impactPoints(cfg config.Config, rep impact.Report) []agent.Point {
	pl := engine.NewPipeline(pipelineConfig(cfg, agent.NewISPMap(cfg.Pipeline.ISPMap)))
	return pl.Process(impact.Points(rep, cfg.Server))
}

// sendImpact writes pts through the sinks of cfg the way `once -sinks`
// and backfill do (feedSinks) and says on stderr how many points went to
// which sink; it fails when a sink did not take them all.
func sendImpact(ctx context.Context, cfg config.Config, pts []agent.Point, stderr io.Writer, log *slog.Logger) error {
	return feedSinks(ctx, cfg, false, "impact", engine.FeedOptions{Stall: impactSendStall}, io.Discard, stderr, log,
		func(_ context.Context, _ *built, emit func(agent.Batch)) error {
			if len(pts) > 0 {
				emit(agent.Batch{Source: impact.Measurement, Points: pts})
			}
			return nil
		},
		func(w io.Writer) { fmt.Fprintf(w, "impact: %d %s points sent\n", len(pts), impact.Measurement) })
}
