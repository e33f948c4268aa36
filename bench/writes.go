package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

// writeResult is one write benchmark: several runs of one path at one
// number of concurrent clients.
type writeResult struct {
	path    string
	clients int
	runs    []sample
}

// opsPerSec is the median over runs of completed writes per second.
func (w writeResult) opsPerSec() float64 {
	rates := make([]float64, len(w.runs))
	for i, s := range w.runs {
		rates[i] = s.rate()
	}
	return median(rates)
}

// p50 is the median over runs of each run's median write latency.
func (w writeResult) p50() time.Duration {
	ps := make([]time.Duration, len(w.runs))
	for i, s := range w.runs {
		ps[i] = s.pct(50)
	}
	return median(ps)
}

// rateRange is the slowest and fastest run, to show the spread.
func (w writeResult) rateRange() (lo, hi float64) {
	lo, hi = math.Inf(1), 0
	for _, s := range w.runs {
		lo, hi = min(lo, s.rate()), max(hi, s.rate())
	}
	return lo, hi
}

// writeSeries measures update sequentially (one client, user 0) and with
// l.cfg.writers clients each on its own user, after an unrecorded warm-up.
func (l *lab) writeSeries(ctx context.Context, path string, update func(ctx context.Context, w, seq int) error) ([]writeResult, error) {
	var out []writeResult
	for _, clients := range []int{1, l.cfg.writers} {
		if _, err := drive(ctx, clients, time.Second, math.MaxInt, update); err != nil {
			return nil, fmt.Errorf("%s warm-up: %w", path, err)
		}
		r := writeResult{path: path, clients: clients}
		for i := range l.cfg.writeRuns {
			s, err := drive(ctx, clients, l.cfg.writeDur, math.MaxInt, update)
			if err != nil {
				return nil, fmt.Errorf("%s with %d clients: %w", path, clients, err)
			}
			r.runs = append(r.runs, s)
			logf("  %s, %d client(s), run %d/%d: %.0f ops/s, p50 %s", path, clients, i+1, l.cfg.writeRuns, s.rate(), ms(s.pct(50)))
		}
		out = append(out, r)
	}
	return out, nil
}

// measureAPIWrites changes users' comments with PUT /access/users/{id}.
// Each client is a separate corral Go client, so a separate connection,
// all sharing one admin ticket.
func (l *lab) measureAPIWrites(ctx context.Context, n *node) ([]writeResult, error) {
	logf("measuring API writes (PUT /access/users/{userid})")
	ticket, err := n.login(ctx, l.password)
	if err != nil {
		return nil, err
	}
	clients := make([]*client.Client, l.cfg.writers)
	for i := range clients {
		if clients[i], err = n.client(); err != nil {
			return nil, err
		}
		defer clients[i].Close()
		clients[i].SetTicket(ticket, "")
	}
	update := func(ctx context.Context, w, seq int) error {
		comment := fmt.Sprintf("api write %d/%d", w, seq)
		_, err := clients[w].UpdateUser(ctx, benchUser(w), api.UserUpdate{Comment: &comment})
		return err
	}
	return l.writeSeries(ctx, "API PUT /access/users/{userid}", update)
}
