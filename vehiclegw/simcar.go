package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"satwatt/internal/canbus"
	"satwatt/internal/clock"
	"satwatt/internal/simcar"
	"satwatt/internal/socketcand"
	vp "satwatt/internal/vehicleprofile"
)

// controlTokenEnv lets the control token stay out of the process list.
const controlTokenEnv = "SATWATT_SIMCAR_TOKEN"

func runSimcar(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := simcar.DefaultParams()
	fs := newFlagSet("simcar", stderr)
	profile := fs.String("profile", "generic", "vehicle profile whose messages the simulated car speaks")
	dbcPath := fs.String("dbc", "", "DBC file to use instead of the profile's own")
	busSpec := fs.String("can", "", "live bus to put the car on: IFACE (SocketCAN) or socketcand://HOST:PORT/BUS")
	serve := fs.String("serve", "", "host a socketcand server at ADDR (e.g. 127.0.0.1:29536) with the car on it, for machines without SocketCAN")
	busName := fs.String("bus", "sim0", "with --serve: the bus name clients open")
	speed := fs.Float64("speed", 1, "simulation speed factor: 60 runs an hour of charging in a minute")
	soc := fs.Float64("soc", float64(def.InitialSOCPermil)/10, "initial state of charge, %")
	target := fs.Float64("target", float64(def.TargetSOCPermil)/10, "the car's own charge limit, %")
	capacity := fs.Float64("capacity-kwh", float64(def.CapacityWh)/1000, "usable pack energy, kWh")
	chargerKW := fs.Float64("charger-kw", float64(def.ChargerMaxW)/1000, "on-board charger limit, kW")
	lineV := fs.Float64("line-v", 230, "AC supply voltage the car reports, V")
	plug := fs.Bool("plug", false, "plug the cable in at start")
	supplyW := fs.Int64("supply-w", 0, "power offered to the car while plugged, W: a bench supply standing in for an EVSE")
	control := fs.String("control", "", "serve the control API (plug, unplug, offer) at ADDR; needs a token in $"+controlTokenEnv)
	report := fs.Duration("report", 0, "print the car's own state every D (real time); 0 = never")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*busSpec == "") == (*serve == "") {
		return fmt.Errorf("%w: give exactly one of --can and --serve", errUsage)
	}
	if *speed <= 0 || math.IsInf(*speed, 0) || math.IsNaN(*speed) {
		return fmt.Errorf("%w: --speed must be positive", errUsage)
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	p := def
	p.InitialSOCPermil = int64(math.Round(*soc * 10))
	p.TargetSOCPermil = int64(math.Round(*target * 10))
	p.CapacityWh = int64(math.Round(*capacity * 1000))
	p.NominalWh = p.CapacityWh * def.NominalWh / def.CapacityWh
	p.ChargerMaxW = int64(math.Round(*chargerKW * 1000))
	binding, err := vp.LoadBinding(*profile, *dbcPath)
	if err != nil {
		return err
	}
	clk := clock.NewScaled(*speed)
	car, err := simcar.New(binding, p, *lineV, clk, log)
	if err != nil {
		return err
	}

	var out simcar.Sender
	if *serve != "" {
		ln, err := net.Listen("tcp", *serve)
		if err != nil {
			return fmt.Errorf("--serve: %w", err)
		}
		srv := socketcand.NewServer(socketcand.ServerOptions{Logger: log})
		port, err := srv.Attach(*busName)
		if err != nil {
			ln.Close()
			return err
		}
		defer port.Close()
		go func() {
			if err := srv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
				log.Error("socketcand server stopped", "err", err)
			}
		}()
		out = port
		fmt.Fprintf(stdout, "simulated car on socketcand://%s/%s\n", ln.Addr(), *busName)
	} else {
		bus, err := canbus.OpenBus(ctx, *busSpec, canbus.Options{Clock: clock.Real{}, Logger: log})
		if err != nil {
			return err
		}
		defer bus.Close()
		out = bus
		fmt.Fprintf(stdout, "simulated car on %s\n", *busSpec)
	}
	log.Info("simulated car", "profile", binding.Profile.Name, "speed", *speed, "soc_pct", *soc, "target_pct", *target, "capacity_kwh", *capacity)

	if *control != "" {
		token := os.Getenv(controlTokenEnv)
		if len(token) < 16 {
			return fmt.Errorf("%w: --control needs a token of at least 16 characters in $%s", errUsage, controlTokenEnv)
		}
		ln, err := net.Listen("tcp", *control)
		if err != nil {
			return fmt.Errorf("--control: %w", err)
		}
		hs := &http.Server{Handler: controlHandler(car, token, log), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		defer hs.Close()
		fmt.Fprintf(stdout, "control API on http://%s\n", ln.Addr())
	}
	if *plug {
		car.Plug()
	}
	if *supplyW > 0 {
		car.Offer(*supplyW)
	}
	if *report > 0 {
		go func() {
			enc := json.NewEncoder(stdout)
			for clock.Sleep(ctx, clock.Real{}, *report) == nil {
				_ = enc.Encode(car.State())
			}
		}()
	}
	err = car.Run(ctx, out)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// carControl is what the control API drives.
type carControl interface {
	Plug()
	Unplug()
	Offer(maxW int64)
	State() simcar.State
}

// controlHandler serves the simulated car's control API: GET /state is open;
// POST /plug, /unplug and /offer?w=N change the car and need the bearer
// token.
func controlHandler(car carControl, token string, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	authorized := func(r *http.Request) bool {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
	}
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !authorized(r) {
				log.Warn("control API: refused a request without a valid token", "path", r.URL.Path, "remote", r.RemoteAddr)
				w.Header().Set("WWW-Authenticate", "Bearer")
				http.Error(w, "a valid bearer token is required", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) { writeState(w, car.State()) })
	mux.HandleFunc("POST /plug", guard(func(w http.ResponseWriter, r *http.Request) {
		car.Plug()
		writeState(w, car.State())
	}))
	mux.HandleFunc("POST /unplug", guard(func(w http.ResponseWriter, r *http.Request) {
		car.Unplug()
		writeState(w, car.State())
	}))
	mux.HandleFunc("POST /offer", guard(func(w http.ResponseWriter, r *http.Request) {
		v, err := strconv.ParseInt(r.URL.Query().Get("w"), 10, 64)
		if err != nil || v < 0 || v > 1_000_000 {
			http.Error(w, "offer needs w=WATTS, an integer from 0 to 1000000", http.StatusBadRequest)
			return
		}
		car.Offer(v)
		writeState(w, car.State())
	}))
	return mux
}

func writeState(w http.ResponseWriter, s simcar.State) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}
