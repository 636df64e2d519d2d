package httpapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"satwatt/wallctl/internal/chargepoint"
)

// Connector is one connector of a wall with several: its charge point
// and, on the simulated EVSE, its built-in vehicle.
type Connector struct {
	Wall Wall
	Sim  SimVehicle
}

// NewWall builds the router of a wall with one or more connectors. With
// one it is New's. With several, connector k answers below /c/k (its
// LNURL-pay offer, status, stream and controls), connector 1 also at the
// root so that a single-connector setup reads the same, and GET
// /api/connectors lists every connector's status. History, receipts and
// settings are the whole wall's wherever they are asked.
func NewWall(cfg Config, conns []Connector, h History) (http.Handler, error) {
	if len(conns) == 0 {
		return nil, fmt.Errorf("httpapi: a wall needs at least one connector")
	}
	one := cfg
	one.Sim = conns[0].Sim
	if len(conns) == 1 {
		return New(one, conns[0].Wall, h)
	}
	one.ConnectorName = "Connector 1"
	root, err := New(one, conns[0].Wall, h)
	if err != nil {
		return nil, err
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, limitBody, securityHeaders)
	for i, c := range conns {
		k := strconv.Itoa(i + 1)
		ccfg := cfg
		ccfg.Sim, ccfg.PathPrefix, ccfg.ConnectorName = c.Sim, "/c/"+k, "Connector "+k
		sub, err := New(ccfg, c.Wall, h)
		if err != nil {
			return nil, err
		}
		r.Mount("/c/"+k, sub)
	}
	if cfg.Side != CarSide {
		r.With(timeout(cfg.RequestTimeout)).Get("/api/connectors", func(w http.ResponseWriter, _ *http.Request) {
			out := make([]chargepoint.Status, len(conns))
			for i, c := range conns {
				out[i] = c.Wall.Status()
			}
			writeJSON(w, http.StatusOK, out)
		})
	}
	r.Mount("/", root)
	return r, nil
}
