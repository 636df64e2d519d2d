// Command satwatt-demo runs one charging session end to end on this
// machine (`make demo`): a regtest Lightning network, the simulated car and
// the simulated EVSE (demo features, not real hardware), wallctl and
// vehiclegw. It plugs the car in, shows the session as it goes, prints a
// summary and stops everything it started, also on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"satwatt/internal/demo"
)

func main() {
	f := flags{}
	flag.StringVar(&f.bin, "bin", "bin", "folder holding the vehiclegw and wallctl binaries (make build)")
	flag.StringVar(&f.cache, "cache", "", "cache folder with lnd and btcd in bin/ (default $SATWATT_CACHE or .cache)")
	flag.StringVar(&f.profile, "profile", "generic", "vehicle profile of the simulated car and the gateway: generic or tesla-model3")
	flag.Float64Var(&f.speed, "speed", 60, "simulation speed factor: 60 charges an hour's energy in a minute")
	flag.Int64Var(&f.soc, "soc", 20, "the simulated car's state of charge at plug-in, %")
	flag.Int64Var(&f.target, "target", 80, "the owner's target state of charge, %")
	flag.Int64Var(&f.capacity, "capacity-kwh", 0, "the simulated car's usable pack, kWh (0: the simulated car's default)")
	flag.Int64Var(&f.price, "price", 300, "the wall's price, sat/kWh")
	flag.Int64Var(&f.increment, "increment-wh", 1000, "energy one payment buys, Wh")
	flag.BoolVar(&f.loopback, "loopback", false, "keep everything on loopback even as root (no network namespaces, no SDP)")
	flag.BoolVar(&f.verbose, "v", false, "log the harness's steps")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, f, os.Stdout); err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Println("\nstopped: every process the demo started is gone")
			os.Exit(130)
		}
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

type flags struct {
	bin, cache, profile                     string
	speed                                   float64
	soc, target, capacity, price, increment int64
	loopback, verbose                       bool
}

func run(ctx context.Context, f flags, out io.Writer) error {
	cache := f.cache
	if cache == "" {
		cache = os.Getenv("SATWATT_CACHE")
	}
	if cache == "" {
		cache = ".cache"
	}
	bin, err := filepath.Abs(f.bin)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(filepath.Join(cache, "demo", time.Now().Format("20060102T150405")))
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	cfg := demo.Config{
		BinDir: bin, CacheDir: cache, Dir: dir,
		Profile: f.profile, Speed: f.speed, CapacityKWh: f.capacity, SOCPct: f.soc, TargetPct: f.target,
		PriceSat: f.price, IncrementWh: f.increment,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	if why := demo.CanUseNamespaces(); why != nil || f.loopback {
		if why == nil {
			why = errors.New("--loopback")
		}
		fmt.Fprintf(out, "PLC link: loopback (%v): the wall and the car share this machine's loopback, and the car is given the wall's URL instead of finding it by SDP\n", why)
	} else {
		cfg.Namespaces = true
		fmt.Fprintln(out, "PLC link: two network namespaces joined by a veth pair with IPv6 link-local addresses only; the car finds the wall by SDP multicast")
	}
	fmt.Fprintf(out, "starting: a regtest Lightning network (btcd, the wall's lnd, the car's lnd, a channel), the SIMULATED car (%s) and the SIMULATED EVSE at %gx speed, wallctl and vehiclegw\n", f.profile, f.speed)
	began := time.Now()
	site, err := demo.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping every process the demo started")
		if err := site.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: stopping: %v\n", err)
		}
	}()
	fmt.Fprintf(out, "ready after %s\n", time.Since(began).Round(100*time.Millisecond))
	fmt.Fprintf(out, "the wall's web page: %s/ (history %s/history; status JSON %s/api/status)\n", site.WebURL, site.WebURL, site.WebURL)
	fmt.Fprintf(out, "logs and databases: %s\n\n", dir)

	s, err := charge(ctx, site, f, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nsummary\n")
	fmt.Fprintf(out, "  state of charge   %d.%d %% -> %d.%d %% (target %d %%)\n", f.soc, 0, s.socPermil/10, s.socPermil%10, f.target)
	fmt.Fprintf(out, "  energy            %s kWh delivered by the wall, %s kWh measured by the car\n", kwh(s.wall.DeliveredMWh), kwh(s.carMWh))
	fmt.Fprintf(out, "  paid              %d sat (%d msat) in %d payments\n", s.wall.PaidMsat/1000, s.wall.PaidMsat, s.wall.Payments)
	fmt.Fprintf(out, "  plug-in to energy %s\n", s.toEnergy.Round(10*time.Millisecond))
	fmt.Fprintf(out, "  session           %s, ended: %s\n", s.wall.ID, s.wall.EndReason)
	fmt.Fprintf(out, "\nquery both histories:\n  %s history --db %s\n  %s history --db %s\n",
		filepath.Join(f.bin, "vehiclegw"), site.CarDB, filepath.Join(f.bin, "wallctl"), site.WallDB)
	return nil
}

type outcome struct {
	wall      demo.WallSession
	socPermil int64
	carMWh    int64
	toEnergy  time.Duration
}

// charge plugs the car in, follows the session to the target, unplugs and
// returns the wall's record of the session.
func charge(ctx context.Context, site *demo.Site, f flags, out io.Writer) (outcome, error) {
	var o outcome
	if err := site.Plug(ctx); err != nil {
		return o, err
	}
	plugged := time.Now()
	fmt.Fprintf(out, "plugged in at %s\n", plugged.Format(time.TimeOnly))
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastPrint time.Time
	for {
		select {
		case <-ctx.Done():
			return o, ctx.Err()
		case <-tick.C:
		}
		if p := site.CarProcess(); p.Exited() {
			return o, p.ExitError()
		}
		if p := site.WallProcess(); p.Exited() {
			return o, p.ExitError()
		}
		w, werr := site.ReadWall(ctx)
		car := site.LastCar()
		sim, serr := site.ReadSimcar(ctx)
		if werr == nil && w.Session != nil && o.toEnergy == 0 && w.Session.DeliveredMWh > 0 {
			o.toEnergy = time.Since(plugged)
			fmt.Fprintf(out, "energy flowing %s after plug-in\n", o.toEnergy.Round(10*time.Millisecond))
		}
		if time.Since(lastPrint) >= time.Second && werr == nil && serr == nil && w.Session != nil {
			lastPrint = time.Now()
			ws := w.Session
			fmt.Fprintf(out, "%s  %-11s SoC %5.1f %% -> %d %%  %7s kWh  %6d sat  %3d payments  credit %5d Wh  %5.1f kW  car: %s %s\n",
				time.Now().Format(time.TimeOnly), w.Connector, float64(sim.SOCPermil)/10, f.target,
				kwh(ws.DeliveredMWh), ws.PaidMsat/1000, ws.Payments, ws.CreditMWh/1000, float64(ws.PowerW)/1000, car.State, car.Error)
		}
		switch car.State {
		case "COMPLETE", "STOPPED", "ERROR":
		default:
			continue
		}
		o.socPermil = sim.SOCPermil
		fmt.Fprintf(out, "the gateway reports %s (%s); unplugging\n", car.State, car.Error)
		if err := site.Unplug(ctx); err != nil {
			return o, err
		}
		err := site.WaitCar(ctx, func(st demo.CarStatus) bool { return st.State == "IDLE" }, time.Minute)
		if err != nil {
			return o, fmt.Errorf("the gateway did not see the unplug: %w", err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			w, err := site.ReadWall(ctx)
			if err == nil && w.Session == nil && w.Last != nil {
				o.wall = *w.Last
				break
			}
			if time.Now().After(deadline) {
				return o, fmt.Errorf("the wall did not end the session: %v %+v", err, w)
			}
			select {
			case <-ctx.Done():
				return o, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		t, err := site.CarTotals(ctx)
		o.carMWh = t.MeasuredMWh
		return o, err
	}
}

// kwh prints mWh as kWh with three decimals, without floats.
func kwh(mwh int64) string {
	return fmt.Sprintf("%d.%03d", mwh/1_000_000, mwh/1000%1000)
}
