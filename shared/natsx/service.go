package natsx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
)

// Handler answers one request. It returns the reply body (encoded as JSON) or
// an error; a *messages.Error goes to the caller as is, anything else as
// "internal" with the detail only in the log.
type Handler func(ctx context.Context, req micro.Request) (any, error)

// FastHandler answers a request at once, without blocking (no I/O, no
// locks held for long), or says it cannot (handled false) and the request
// goes to the Handler in the pool. Answering inline on the subscription's
// goroutine lets NATS batch the replies into fewer writes: it is how a hot
// path stays close to the floor of a do-nothing responder.
type FastHandler func(req micro.Request) (reply any, err error, handled bool)

// ServiceConfig describes a micro service.
type ServiceConfig struct {
	Name        string // service kind: "vault", "handshake", "admin"
	Version     string // SemVer
	Description string
	Prefix      string // subject prefix, "nexus" by default
	// Keys are the API keys every request must carry in Nexus-Api-Key. A nil
	// or empty set rejects every request: there is no unauthenticated mode.
	Keys *apikey.Keys
	Log  *slog.Logger
	// Concurrency bounds the handlers running at once (default 512). When
	// full, the subscription waits, which pushes back on callers.
	Concurrency int
	// Timeout bounds each handler (default 15s).
	Timeout time.Duration
	// Registerer receives the request-duration histogram; nil for none.
	Registerer prometheus.Registerer
}

// Service is a micro service whose endpoints run concurrently, check the API
// key and speak the contract's error convention.
type Service struct {
	cfg      ServiceConfig
	svc      micro.Service
	sem      chan struct{}
	wg       sync.WaitGroup
	duration *prometheus.HistogramVec
}

// NewService registers a micro service on nc.
func NewService(nc *nats.Conn, cfg ServiceConfig) (*Service, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = messages.DefaultPrefix
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 512
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        cfg.Name,
		Version:     cfg.Version,
		Description: cfg.Description,
		// Every endpoint of every replica shares one queue group per service kind.
		QueueGroup: "nexus-" + cfg.Name,
	})
	if err != nil {
		return nil, fmt.Errorf("add micro service %s: %w", cfg.Name, err)
	}
	s := &Service{cfg: cfg, svc: svc, sem: make(chan struct{}, cfg.Concurrency)}
	if cfg.Registerer != nil {
		s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexus_nats_request_duration_seconds",
			Help:    "Time to answer a NATS request, by subject and result code.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"subject", "code"})
		if err := cfg.Registerer.Register(s.duration); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return s, nil
}

// Handle adds an endpoint for subject (relative to the prefix, such as
// messages.SubjectTokensGet). The group is everything before the last token,
// so $SRV.INFO lists endpoints by area.
func (s *Service) Handle(subject string, h Handler) error {
	return s.HandleFast(subject, nil, h)
}

// HandleFast is Handle with a fast path tried first on the subscription's
// goroutine; see FastHandler.
func (s *Service) HandleFast(subject string, fast FastHandler, h Handler) error {
	i := strings.LastIndexByte(subject, '.')
	if i < 0 {
		return fmt.Errorf("subject %q has no group", subject)
	}
	group, last := subject[:i], subject[i+1:]
	name := strings.ReplaceAll(strings.TrimPrefix(subject, "v1."), ".", "-")
	full := messages.Subject(s.cfg.Prefix, subject)
	g := s.svc.AddGroup(messages.Subject(s.cfg.Prefix, group))
	return g.AddEndpoint(name, micro.HandlerFunc(func(req micro.Request) {
		start := time.Now()
		if !s.cfg.Keys.Valid(req.Headers().Get(messages.HeaderAPIKey)) {
			s.finish(full, req, start, nil, messages.Errorf(messages.CodeUnauthorized, "missing or invalid %s header", messages.HeaderAPIKey))
			return
		}
		if fast != nil {
			if reply, err, handled := s.callFast(full, req, fast); handled {
				s.finish(full, req, start, reply, err)
				return
			}
		}
		s.sem <- struct{}{}
		s.wg.Add(1)
		go func() {
			defer func() { <-s.sem; s.wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
			reply, err := s.call(ctx, full, req, h)
			cancel()
			s.finish(full, req, start, reply, err)
		}()
	}), micro.WithEndpointSubject(last))
}

func (s *Service) callFast(subject string, req micro.Request, fast FastHandler) (reply any, err error, handled bool) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Log.Error("handler panic", "subject", subject, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			reply, err, handled = nil, fmt.Errorf("panic in handler"), true
		}
	}()
	return fast(req)
}

// finish sends the reply or the error and records the duration.
func (s *Service) finish(subject string, req micro.Request, start time.Time, reply any, err error) {
	code := "ok"
	if err != nil {
		code = string(s.fail(subject, req, err))
	} else if rerr := respondJSON(req, reply); rerr != nil {
		s.cfg.Log.Error("reply failed", "subject", subject, "err", rerr)
	}
	if s.duration != nil {
		s.duration.WithLabelValues(subject, code).Observe(time.Since(start).Seconds())
	}
}

func (s *Service) call(ctx context.Context, subject string, req micro.Request, h Handler) (reply any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Log.Error("handler panic", "subject", subject, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			reply, err = nil, fmt.Errorf("panic in handler")
		}
	}()
	return h(ctx, req)
}

// fail is the one place where errors become the contract's error replies.
func (s *Service) fail(subject string, req micro.Request, err error) messages.ErrorCode {
	var e *messages.Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		e = messages.Errorf(messages.CodeUnavailable, "the request timed out; try again")
	default:
		e = messages.Errorf(messages.CodeInternal, "internal error")
	}
	if e.Code == messages.CodeInternal || e.Code == messages.CodeUnavailable {
		s.cfg.Log.Error("request failed", "subject", subject, "code", e.Code, "err", err)
	}
	body, _ := json.Marshal(messages.ErrorBody{Error: e})
	// Not req.Error: it records the error in the request, which micro reads
	// for its stats as soon as the (asynchronous) handler has been started,
	// a data race. The reply is the same: micro's error headers and the body.
	desc := e.Message
	if desc == "" {
		desc = string(e.Code)
	}
	if rerr := req.Respond(body, micro.WithHeaders(micro.Headers{
		micro.ErrorHeader:     {desc},
		micro.ErrorCodeHeader: {strconv.Itoa(e.Code.Status())},
	})); rerr != nil {
		s.cfg.Log.Error("error reply failed", "subject", subject, "err", rerr)
	}
	return e.Code
}

func respondJSON(req micro.Request, v any) error {
	if raw, ok := v.(json.RawMessage); ok {
		return req.Respond(raw)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return req.Respond(body)
}

// Stop removes the endpoints and waits for the handlers in flight.
func (s *Service) Stop() error {
	err := s.svc.Stop()
	s.wg.Wait()
	return err
}

// Decode reads a JSON request body into v. An empty body is read as {} (a
// request whose fields are all optional needs none); malformed JSON, a body
// that is not an object, a field v does not have, a value of the wrong type,
// or trailing data is an invalid_request naming what is wrong.
func Decode(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		data = emptyObject
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if dec.InputOffset() != int64(len(data)) {
		return messages.Errorf(messages.CodeInvalidRequest, "the request body holds more than one JSON value")
	}
	return nil
}

var emptyObject = []byte("{}")

// maxFieldName bounds a field name quoted back in an error.
const maxFieldName = 64

func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return messages.Errorf(messages.CodeInvalidRequest, "the request body must be a JSON object")
		}
		return messages.Errorf(messages.CodeInvalidRequest, "field %q: expected %s", clip(te.Field), te.Type)
	}
	// encoding/json reports an unknown field only in its message.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, err := strconv.Unquote(name); err == nil {
			name = unq
		}
		return messages.Errorf(messages.CodeInvalidRequest, "unknown field %q", clip(name))
	}
	return messages.Errorf(messages.CodeInvalidRequest, "malformed JSON request body")
}

func clip(s string) string {
	if len(s) > maxFieldName {
		return s[:maxFieldName] + "..."
	}
	return s
}
