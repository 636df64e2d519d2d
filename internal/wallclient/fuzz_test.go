package wallclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"satwatt/internal/fuzzcheck"
	"satwatt/internal/lnurlpay"
	"satwatt/internal/offer"
)

// What the car reads from the wall: the status object (decodeStatus, on
// its own and inside the event stream) and the answers of each route.
// Seeds are the wall's own answers, captured from wallctl's handler into
// testdata/wall (see the README there).

// originMark in a seed stands for the test server's origin.
const originMark = "$ORIGIN"

// fuzzMaxBody is the Client's body limit in these targets: small, so the
// fuzzer reaches it.
const fuzzMaxBody = 8 << 10

// maxErrLen bounds an error message: the wall's words are clipped.
const maxErrLen = 1 << 10

// wallSeed is one captured answer.
type wallSeed struct {
	name   string
	status int
	body   []byte
}

// wallSeeds reads testdata/wall/NAME.STATUS.(json|txt).
func wallSeeds(t testing.TB) []wallSeed {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "wall", "*.*.*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []wallSeed
	for _, f := range files {
		parts := strings.Split(filepath.Base(f), ".")
		code, err := strconv.Atoi(parts[1])
		if err != nil {
			t.Fatalf("%s: no status in the name", f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, wallSeed{name: parts[0], status: code, body: b})
	}
	if len(out) == 0 {
		t.Fatal("no captured answers in testdata/wall")
	}
	return out
}

// checkStatus asserts what decodeStatus promises of a status it accepts.
func checkStatus(t *testing.T, st WallStatus) {
	t.Helper()
	if st.Connector == "" {
		t.Fatalf("status without a connector accepted: %+v", st)
	}
	for _, s := range []*WallSession{st.Session, st.Last} {
		if s == nil {
			continue
		}
		if s.ID == "" || s.PriceMsatPerWh < 0 || s.IncrementWh < 0 || s.FirstPaymentMsat < 0 || s.GraceWh < 0 ||
			s.DeliveredMWh < 0 || s.PaidMsat < 0 || s.PaidEnergyMWh < 0 || s.PowerW < 0 || s.Payments < 0 {
			t.Fatalf("session accepted: %+v", *s)
		}
	}
	// What was accepted survives the trip back to JSON.
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	again, err := decodeStatus(b)
	if err != nil || !reflect.DeepEqual(again, st) {
		t.Fatalf("re-decoding %s: %+v, %v", b, again, err)
	}
}

// checkStatusErr asserts what a refused status says.
func checkStatusErr(t *testing.T, err error) {
	t.Helper()
	fuzzcheck.ErrorSays(t, err, "bad response from the wall: status")
	if !errors.Is(err, ErrBadResponse) {
		t.Fatalf("error %q does not wrap ErrBadResponse", err)
	}
	msg := err.Error()
	if len(msg) > maxErrLen {
		t.Fatalf("error is %d bytes: %.300q...", len(msg), msg)
	}
	for _, w := range []string{"field", "byte", "object", "JSON", "connector", "id", "negative"} {
		if strings.Contains(msg, w) {
			return
		}
	}
	t.Fatalf("error %q does not say what is wrong", msg)
}

// FuzzDecodeStatus: the status object, from /api/status and from each
// stream event. Bounded allocation; a clear refusal; what is accepted
// meets the promises and re-encodes to itself.
func FuzzDecodeStatus(f *testing.F) {
	for _, s := range wallSeeds(f) {
		if strings.HasPrefix(s.name, "status") {
			f.Add(s.body)
		}
	}
	for _, s := range []string{
		statusJSON(1000), `{"connector":"idle","ready":true}`, `{"connector":"x","session":{"id":"s","paid_msat":1.5}}`,
		`{"connector":"x","session":{"id":"s","paid_msat":1e3}}`, `{"connector":"x","last":{"id":"","payments":1}}`,
		`{"connector":"x","session":{"id":"s","delivered_mwh":-1}}`, `[]`, `{}`, `null`, ` {"connector":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var st WallStatus
		var err error
		fuzzcheck.Alloc(t, "decodeStatus", len(b), 64, 64<<10, func() { st, err = decodeStatus(b) })
		if err != nil {
			checkStatusErr(t, err)
			return
		}
		checkStatus(t, st)
	})
}

// Routes of FuzzWallResponse, by the first byte of its input.
var responseRoutes = []struct {
	key  string // the fake wall's route
	seed string // captured answers with this name prefix seed it
}{
	{"GET /lnurlp", "offer"},
	{"GET /lnurlp/sess-7/callback", "callback"},
	{"GET /api/status", "status"},
	{"GET /api/status/stream", "stream"},
	{"POST /api/sessions/sess-7/buyer-stop", "buyer-stop"},
}

// answerSlot is the answer the fuzzed route serves now; the fuzz worker
// runs one input at a time.
type answerSlot struct {
	mu     sync.Mutex
	status int
	ctype  string
	body   []byte
}

func (s *answerSlot) set(status int, ctype string, body []byte) {
	s.mu.Lock()
	s.status, s.ctype, s.body = status, ctype, body
	s.mu.Unlock()
}

func (s *answerSlot) serve(rw http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	status, ctype, body := s.status, s.ctype, s.body
	s.mu.Unlock()
	if ctype != "" {
		rw.Header().Set("Content-Type", ctype)
	}
	rw.WriteHeader(status)
	_, _ = rw.Write(body)
}

// FuzzWallResponse: the answers of the wall's routes (offer, invoice,
// status, the status stream, buyer stop) as the Client reads them off a
// loopback socket: status code, content type and body fuzzed. No panic;
// a body over the limit refused as such; a refusal that names the route,
// says what went wrong in bounded words and never repeats the preimage;
// what is accepted meets each method's promises.
func FuzzWallResponse(f *testing.F) {
	w := newFakeWall(f)
	c, _ := w.client()
	c.MaxBody = fuzzMaxBody
	honest, err := c.Offer(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	var slot answerSlot
	for _, r := range responseRoutes {
		w.route(r.key, slot.serve)
	}
	for _, s := range wallSeeds(f) {
		for i, r := range responseRoutes {
			if strings.HasPrefix(s.name, r.seed) {
				ct := "application/json"
				if r.seed == "stream" {
					ct = "text/event-stream"
				}
				f.Add(uint8(i), uint16(s.status-200), ct, s.body)
			}
		}
	}
	f.Add(uint8(2), uint16(0), "application/json", []byte(statusJSON(5)))
	f.Add(uint8(3), uint16(0), "text/event-stream; charset=utf-8", []byte(event(1)+": keep-alive\n\n"+event(2)))
	f.Add(uint8(3), uint16(0), "application/json", []byte(event(1)))
	f.Add(uint8(4), uint16(203), "application/json", []byte(`{"error":"not the buyer: `+strings.ToUpper(goodPreimage)+`"}`))
	f.Add(uint8(2), uint16(300), "text/html", []byte("<html>502 Bad Gateway</html>"))
	f.Fuzz(func(t *testing.T, route uint8, status uint16, ctype string, body []byte) {
		ri := int(route) % len(responseRoutes)
		rt := responseRoutes[ri]
		code := 200 + int(status)%400
		ct := strings.Map(func(r rune) rune {
			if r < 0x20 || r > 0x7e {
				return -1
			}
			return r
		}, ctype)
		body = bytes.ReplaceAll(body, []byte(originMark), []byte(w.srv.URL))
		slot.set(code, ct, body)
		sent := body
		if code == http.StatusNoContent || code == http.StatusNotModified {
			sent = nil
		}
		path := rt.key[strings.IndexByte(rt.key, ' ')+1:]
		var err error
		switch ri {
		case 0:
			var o Offer
			o, err = c.Offer(context.Background())
			if err == nil && (o.Pay == nil || !o.Terms.Equal(o.Pay.Offer) || o.Metadata != o.Pay.Metadata ||
				!sameOrigin(c.Base, o.Pay.Callback) || offer.DescriptionHash(o.Metadata) != offer.DescriptionHash(o.Pay.Metadata)) {
				t.Fatalf("offer accepted: %+v", o)
			}
		case 1:
			var pr string
			pr, err = c.Invoice(context.Background(), honest, honest.Pay.MinSendableMsat, 500)
			if err == nil && pr == "" {
				t.Fatal("an empty invoice accepted")
			}
		case 2:
			var st WallStatus
			st, err = c.Status(context.Background())
			if err == nil {
				checkStatus(t, st)
				if want, derr := decodeStatus(sent); derr != nil || !reflect.DeepEqual(st, want) {
					t.Fatalf("status %+v, decodeStatus says %+v, %v", st, want, derr)
				}
			}
		case 3:
			var n int
			n, err = c.stream(context.Background(), func(st WallStatus) { checkStatus(t, st) },
				func(line int, err error) { checkStatusErr(t, err) })
			if lines := bytes.Count(sent, []byte("\n")) + bytes.Count(sent, []byte("\r")); n > lines/2 {
				t.Fatalf("%d statuses from %d line ends", n, lines)
			}
			if err == nil {
				t.Fatal("the stream ended without a reason")
			}
			if errors.Is(err, io.EOF) {
				return
			}
		case 4:
			err = c.BuyerStop(context.Background(), "sess-7", goodPreimage)
			var ok struct {
				Stopped bool `json:"stopped"`
			}
			if err == nil && (code > 299 || json.Unmarshal(sent, &ok) != nil || !ok.Stopped) {
				t.Fatalf("stop accepted with HTTP %d %q", code, sent)
			}
		}
		if err == nil {
			return
		}
		fuzzcheck.ErrorSays(t, err, "wallclient: ", path)
		msg := err.Error()
		if len(msg) > maxErrLen {
			t.Fatalf("error is %d bytes: %.300q...", len(msg), msg)
		}
		if strings.Contains(strings.ToLower(msg), goodPreimage) {
			t.Fatalf("error repeats the preimage: %q", msg)
		}
		if code <= 299 && int64(len(sent)) > fuzzMaxBody && ri != 3 && !errors.Is(err, ErrBodyTooLarge) {
			t.Fatalf("a %d-byte body over the %d-byte limit: %v", len(sent), fuzzMaxBody, err)
		}
		var he *HTTPError
		switch {
		case errors.As(err, &he), errors.Is(err, ErrDeclined), errors.Is(err, ErrBadResponse), errors.Is(err, ErrBodyTooLarge),
			errors.Is(err, ErrForeignHost), errors.Is(err, lnurlpay.ErrBadResponse), errors.Is(err, offer.ErrMetadata), errors.Is(err, ErrSSE):
		default:
			t.Fatalf("error %q is none of the documented kinds", msg)
		}
	})
}

// TestDecodeStatusSaysWhere covers what FuzzDecodeStatus asks of a
// refusal: the field or the byte, in bounded words (encoding/json quotes
// a number literal whole).
func TestDecodeStatusSaysWhere(t *testing.T) {
	huge := strings.Repeat("9", 60<<10)
	tests := []struct{ in, says string }{
		{`{"connector":"x","session":{"id":"s","paid_msat":` + huge + `}}`, "field session.paid_msat: got a JSON number 999"},
		{`{"connector":"x","session":{"id":"s","paid_msat":1.5}}`, "field session.paid_msat: got a JSON number 1.5, want int64"},
		{`{"connector":7}`, "field connector: got a JSON number, want string"},
		{`{"connector":"x",}`, "near byte 18"},
		{`{"connector":"x","last":{"payments":1}}`, "status last: has no id"},
	}
	for _, tt := range tests {
		_, err := decodeStatus([]byte(tt.in))
		if err == nil || !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), tt.says) || len(err.Error()) > maxErrLen {
			t.Errorf("decodeStatus(%.80s) = %.300v, want it to say %q", tt.in, err, tt.says)
		}
	}
}
