package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"go.einride.tech/can"
	"go.einride.tech/can/pkg/descriptor"

	"satwatt/internal/canlog"
	"satwatt/internal/vehicledata"
	vp "satwatt/internal/vehicleprofile"
	"satwatt/internal/vehiclestate"
)

// busMaxFPS is about the most frames a 500 kbit/s bus carries in a second.
const busMaxFPS = 4000

var (
	baselineOnce   sync.Once
	baselineNS     float64
	baselineFrames []can.Frame
	sink           float64
)

// BenchmarkDecodeModel3Log measures the gateway's whole decode path over the
// real Model 3 recording: candump text parsed, each frame looked up, the
// profile's roles decoded and the state updated. One op is one frame.
//
// The baseline, measured in the same run, is einride's bare descriptor
// decode of the same frames already in memory: the message found by ID in a
// map, every signal of it decoded with descriptor.Signal.UnmarshalPhysical.
// Both use the community DBC, the full vehicle bus.
func BenchmarkDecodeModel3Log(b *testing.B) {
	logPath := vehicledata.Require(b, "model3-2019-chargeport-open.candump.log")
	dbcPath := vehicledata.Require(b, "tesla-model3-community.dbc")
	data, err := os.ReadFile(logPath)
	if err != nil {
		b.Fatal(err)
	}
	binding, err := vp.LoadBinding("tesla-model3", dbcPath)
	if err != nil {
		b.Fatal(err)
	}
	baselineOnce.Do(func() {
		r := canlog.NewReader(bytes.NewReader(data), canlog.Candump)
		for {
			var f can.Frame
			if _, err := r.Next(&f); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				continue
			}
			baselineFrames = append(baselineFrames, f)
		}
		byID := map[uint32]*descriptor.Message{}
		for _, m := range binding.DB.Desc.Messages {
			byID[m.ID] = m
		}
		// testing.Benchmark cannot run inside a benchmark, so time the
		// baseline by hand: passes over the log until 300 ms have gone by.
		start := time.Now()
		n := 0
		for time.Since(start) < 300*time.Millisecond {
			for i := range baselineFrames {
				f := &baselineFrames[i]
				if m := byID[f.ID]; m != nil {
					for _, s := range m.Signals {
						sink += s.UnmarshalPhysical(f.Data)
					}
				}
			}
			n += len(baselineFrames)
		}
		baselineNS = float64(time.Since(start).Nanoseconds()) / float64(n)
	})

	tracker := vehiclestate.New(binding, nil)
	t0 := time.Date(2020, 9, 13, 12, 26, 40, 0, time.UTC)
	src := bytes.NewReader(data)
	r := canlog.NewReader(src, canlog.Candump)
	var f can.Frame
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts, err := r.Next(&f)
		if err != nil {
			if errors.Is(err, io.EOF) {
				src.Reset(data)
				r = canlog.NewReader(src, canlog.Candump)
			}
			continue
		}
		tracker.Update(&f, t0.Add(ts))
	}
	b.StopTimer()
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(1e9/ns, "frames/s")
	b.ReportMetric(baselineNS, "baseline-ns/frame")
	b.ReportMetric(1e9/baselineNS, "baseline-frames/s")
	b.ReportMetric(ns/baselineNS, "x-baseline")
	b.ReportMetric(busMaxFPS*ns/1e9*100, "%cpu@4000fps")
}
