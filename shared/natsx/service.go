package natsx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
)

// ServiceConfig describes a micro service.
type ServiceConfig struct {
	Name        string // service kind: "vault", "handshake", "admin"
	Version     string // SemVer
	Description string
	Prefix      string // subject prefix, "nexus" by default
	// Callers are the keys the service accepts in Nexus-Api-Key and who
	// each names. A request without one of them is unauthorized; one from a
	// caller its endpoint does not serve (For) is forbidden. There is no
	// unauthenticated mode.
	Callers *apikey.Set
	// Errors maps the service's own errors to the contract's, the one place
	// per service where that happens: it returns a *messages.Error, or the
	// error unchanged when it is unexpected (the caller then gets internal
	// and the log gets the detail). Nil leaves errors as they are.
	Errors func(error) error
	Log    *slog.Logger
	// Concurrency bounds the handlers running at once (default 512). When
	// full, the subscription waits, which pushes back on callers.
	Concurrency int
	// Timeout bounds each handler (default 15s).
	Timeout time.Duration
	// MaxRequestBytes bounds a request body (default DefaultMaxRequestBytes);
	// an endpoint may allow more or less (MaxBytes).
	MaxRequestBytes int
	// Registerer receives the request-duration histogram; nil for none.
	Registerer prometheus.Registerer
	// Audit, when set, is given a record of every request to an endpoint
	// registered with Audited, refused ones included, once its answer is
	// settled and just before it is sent. It runs on the answering
	// goroutine, the subscription's for requests answered inline: it must
	// not block.
	Audit func(AuditRecord)
}

// AuditRecord is who asked what of an audited endpoint, and what came of it.
// It never holds a secret: the request body is not in it.
type AuditRecord struct {
	At      time.Time
	Caller  apikey.Caller // the zero Caller when the key was unknown
	Subject string        // relative to the prefix, e.g. v1.tokens.get
	// Target and Workspace are what the request named (AuditTarget), when
	// it could be decoded; what a successful reply names instead, when it
	// names something (the connection a request created).
	Target, Workspace string
	// Actor is the key id of the caller a service acted for, when the
	// request names one (AuditActorer): the Gateway key behind a consent
	// the handshake starts.
	Actor string
	// Code is the error's contract code; "" when the request succeeded.
	Code messages.ErrorCode
}

// AuditTargeter is implemented by request types that name what they act on
// (a connection, a provider), for audit records, and by reply types that
// name what was acted on.
type AuditTargeter interface {
	AuditTarget() (target, workspace string)
}

// AuditActorer is implemented by request types in which a service names the
// caller it acts for (a key id, never a key), for audit records.
type AuditActorer interface {
	AuditActor() string
}

// Service is a micro service whose endpoints run concurrently, check the API
// key and speak the contract's error convention.
type Service struct {
	cfg      ServiceConfig
	svc      micro.Service
	sem      chan struct{}
	duration *prometheus.HistogramVec

	// run counts the pool's handlers in flight; stopping (under runMu) ends
	// new ones, so Stop's Wait never races a handler's Add.
	runMu    sync.Mutex
	stopping bool
	run      sync.WaitGroup

	mu     sync.Mutex
	counts map[string]*endpointCounts // by endpoint name
}

// endpointCounts are an endpoint's error replies by contract code. micro
// counts an error only when the handler answers it before returning, which
// an endpoint that answers from a pool cannot do; these go in the endpoint's
// $SRV.STATS data so every error is seen there too.
type endpointCounts struct {
	mu     sync.Mutex
	errors map[messages.ErrorCode]int
}

// EndpointStats is the data of an endpoint in $SRV.STATS: every error reply
// by contract code, including those micro's own num_errors cannot see
// (answered from the handler pool).
type EndpointStats struct {
	Errors map[messages.ErrorCode]int `json:"errors"`
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
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	s := &Service{cfg: cfg, sem: make(chan struct{}, cfg.Concurrency), counts: map[string]*endpointCounts{}}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        cfg.Name,
		Version:     cfg.Version,
		Description: cfg.Description,
		// Every endpoint of every replica shares one queue group per service kind.
		QueueGroup:   "nexus-" + cfg.Name,
		StatsHandler: s.stats,
	})
	if err != nil {
		return nil, fmt.Errorf("add micro service %s: %w", cfg.Name, err)
	}
	s.svc = svc
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

func (s *Service) stats(e *micro.Endpoint) any {
	s.mu.Lock()
	c := s.counts[e.Name]
	s.mu.Unlock()
	out := EndpointStats{Errors: map[messages.ErrorCode]int{}}
	if c != nil {
		c.mu.Lock()
		for code, n := range c.errors {
			out.Errors[code] = n
		}
		c.mu.Unlock()
	}
	return out
}

// DefaultMaxRequestBytes bounds a request body unless the service or the
// endpoint says otherwise.
const DefaultMaxRequestBytes = 64 << 10

// Option configures an endpoint.
type Option func(*endpointOptions)

type endpointOptions struct {
	callers  map[string]bool
	maxBytes int
	audited  bool
}

// For names the callers (apikey.Gateway, apikey.Handshake, ...) an endpoint
// serves. Every endpoint needs at least one.
func For(principals ...string) Option {
	return func(o *endpointOptions) {
		for _, p := range principals {
			o.callers[p] = true
		}
	}
}

// Audited sends a record of every request of the endpoint to the service's
// Audit.
func Audited() Option { return func(o *endpointOptions) { o.audited = true } }

// MaxBytes bounds the endpoint's request body instead of the service's
// MaxRequestBytes.
func MaxBytes(n int) Option { return func(o *endpointOptions) { o.maxBytes = n } }

// CallerOf is who made the request a handler is answering
// (apikey.CallerOf).
func CallerOf(ctx context.Context) apikey.Caller { return apikey.CallerOf(ctx) }

// Endpoint adds a request/reply endpoint for subject (relative to the prefix,
// such as messages.SubjectTokensGet), serving the callers named with For:
// the request body is decoded into Req (Decode's rules), h runs in the
// service's handler pool with the caller in its context (CallerOf), and its
// Reply goes back as JSON (a json.RawMessage as it is). The group is
// everything before the subject's last token, so $SRV.INFO lists endpoints
// by area.
func Endpoint[Req, Reply any](s *Service, subject string, h func(context.Context, Req) (Reply, error), opts ...Option) error {
	return FastEndpoint(s, subject, nil, h, opts...)
}

// FastEndpoint is Endpoint with a fast path tried first, inline on the
// subscription's goroutine, with the decoded request: fast answers at once
// without blocking (no I/O, no locks held for long) and reports handled, or
// reports not handled and the request goes on to h in the pool. Answering
// inline lets NATS batch the replies into fewer writes: it is how a hot path
// stays close to the floor of a do-nothing responder.
//
// fast is given buf, an empty buffer of ReplyBufferSize bytes' capacity,
// to build a json.RawMessage reply in (appending to it) without
// allocating: once the reply has been sent, buf is cleared and reused for
// another request, so nothing fast returns may point into it but the reply.
func FastEndpoint[Req, Reply any](s *Service, subject string, fast func(ctx context.Context, req Req, buf []byte) (reply Reply, handled bool, err error), h func(context.Context, Req) (Reply, error), opts ...Option) error {
	e, err := s.newEndpoint(subject, opts)
	if err != nil {
		return err
	}
	g := s.svc.AddGroup(messages.Subject(s.cfg.Prefix, e.group))
	return g.AddEndpoint(e.name, handler(e, fast, h), micro.WithEndpointSubject(e.last))
}

// newEndpoint sets up the handling state of an endpoint for subject.
func (s *Service) newEndpoint(subject string, opts []Option) (*endpoint, error) {
	o := endpointOptions{callers: map[string]bool{}, maxBytes: s.cfg.MaxRequestBytes}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.callers) == 0 {
		return nil, fmt.Errorf("endpoint %s serves no caller: name them with natsx.For", subject)
	}
	i := strings.LastIndexByte(subject, '.')
	if i < 0 {
		return nil, fmt.Errorf("subject %q has no group", subject)
	}
	name := strings.ReplaceAll(strings.TrimPrefix(subject, "v1."), ".", "-")
	full := messages.Subject(s.cfg.Prefix, subject)
	s.mu.Lock()
	counts := &endpointCounts{errors: map[messages.ErrorCode]int{}}
	s.counts[name] = counts
	s.mu.Unlock()
	e := &endpoint{s: s, opts: o, subject: full, group: subject[:i], last: subject[i+1:], name: name, counts: counts}
	if s.duration != nil {
		e.okDuration = s.duration.WithLabelValues(full, "ok")
	}
	if o.audited && s.cfg.Audit != nil {
		e.audit = s.cfg.Audit
		e.relative = subject
	}
	return e, nil
}

// handler answers e's requests: the key, the body's size and its decoding
// checked inline, then fast (when set) inline, else h in the pool.
func handler[Req, Reply any](e *endpoint, fast func(context.Context, Req, []byte) (Reply, bool, error), h func(context.Context, Req) (Reply, error)) micro.HandlerFunc {
	s, o := e.s, e.opts
	return func(req micro.Request) {
		start := time.Now()
		caller, ok := s.cfg.Callers.Identify(req.Headers().Get(messages.HeaderAPIKey))
		ctx, span := e.startHandling(context.Background(), req.Headers(), caller.Principal)
		rec := AuditRecord{At: start, Caller: caller}
		switch {
		case !ok:
			e.finish(req, &rec, span, nil, messages.Errorf(messages.CodeUnauthorized, "missing or invalid %s header", messages.HeaderAPIKey), true)
			return
		case !o.callers[caller.Principal]:
			e.finish(req, &rec, span, nil, messages.Errorf(messages.CodeForbidden, "this key may not call %s", e.subject), true)
			return
		case len(req.Data()) > o.maxBytes:
			e.finish(req, &rec, span, nil, messages.Errorf(messages.CodeInvalidRequest, "the request body is larger than %d bytes", o.maxBytes), true)
			return
		}
		var in Req
		if err := Decode(req.Data(), &in); err != nil {
			e.finish(req, &rec, span, nil, err, true)
			return
		}
		if e.audit != nil {
			// &in, not in: a pointer is an interface value without a copy.
			if t, ok := any(&in).(AuditTargeter); ok {
				rec.Target, rec.Workspace = t.AuditTarget()
			}
			if a, ok := any(&in).(AuditActorer); ok {
				rec.Actor = a.AuditActor()
			}
		}
		ctx = apikey.WithCaller(ctx, caller)
		if fast != nil && e.tryFast(req, &rec, span, func(buf []byte) ([]byte, bool, error) {
			reply, handled, err := callFast(ctx, e, in, buf, fast)
			if !handled {
				return nil, false, nil
			}
			body, err := settle(e, &rec, reply, err)
			return body, true, err
		}) {
			return
		}
		if !s.enter() {
			e.finish(req, &rec, span, nil, messages.Errorf(messages.CodeUnavailable, "this replica is stopping; try again"), true)
			return
		}
		s.sem <- struct{}{}
		pooled := rec // only the pool's copy leaves this goroutine
		go func() {
			defer func() { <-s.sem; s.run.Done() }()
			ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
			reply, err := call(ctx, e, in, h)
			cancel()
			body, err := settle(e, &pooled, reply, err)
			e.finish(req, &pooled, span, body, err, false)
		}()
	}
}

// endpoint is one subject's handling state.
type endpoint struct {
	s    *Service
	opts endpointOptions
	// subject is the full subject; group, last and name are micro's.
	subject, group, last, name string
	counts                     *endpointCounts
	// okDuration is the duration histogram's series for a success, looked
	// up once (nil without a Registerer).
	okDuration prometheus.Observer
	// audit, for an audited endpoint of a service with an Audit sink.
	audit    func(AuditRecord)
	relative string
}

// ReplyBufferSize is the capacity of the buffer a fast path is given to
// build its reply in: a Credential with a long access token fits.
const ReplyBufferSize = 4 << 10

// replyBuffers are the fast paths' reply buffers (*[]byte), each cleared
// before it goes back.
var replyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, ReplyBufferSize)
	return &b
}}

// tryFast runs a fast path (answer) with a reply buffer and, when it
// handled the request, sends what it answered, reporting true. The buffer
// is reused only after the reply is out: nats.go copies a reply into the
// connection's write buffer before Respond returns (or into its reconnect
// buffer), so the next request's reply cannot be built over this one's.
func (e *endpoint) tryFast(req micro.Request, rec *AuditRecord, span trace.Span, answer func(buf []byte) (body []byte, handled bool, err error)) bool {
	bp := replyBuffers.Get().(*[]byte)
	buf := (*bp)[:cap(*bp)]
	body, handled, err := answer(buf[:0])
	if handled {
		e.finish(req, rec, span, body, err, true)
	}
	// A reply built in the buffer is all that was written there (a reply
	// that outgrew it may have left a part): clear that much.
	if len(body) > 0 && &body[0] == &buf[0] {
		buf = buf[:len(body)]
	}
	clear(buf)
	replyBuffers.Put(bp)
	return handled
}

func callFast[Req, Reply any](ctx context.Context, e *endpoint, in Req, buf []byte, fast func(context.Context, Req, []byte) (Reply, bool, error)) (reply Reply, handled bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			e.s.cfg.Log.Error("handler panic", "subject", e.subject, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			var zero Reply
			reply, handled, err = zero, true, fmt.Errorf("panic in handler")
		}
	}()
	return fast(ctx, in, buf)
}

func call[Req, Reply any](ctx context.Context, e *endpoint, in Req, h func(context.Context, Req) (Reply, error)) (reply Reply, err error) {
	defer func() {
		if r := recover(); r != nil {
			e.s.cfg.Log.Error("handler panic", "subject", e.subject, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			var zero Reply
			reply, err = zero, fmt.Errorf("panic in handler")
		}
	}()
	return h(ctx, in)
}

// settle is what a handler's answer sends: its reply encoded (a
// json.RawMessage as it is), and for an audited endpoint what the reply
// names, when it names something (the connection a request created), in
// rec. A reply that cannot be encoded is an error.
func settle[Reply any](e *endpoint, rec *AuditRecord, reply Reply, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if raw, ok := any(reply).(json.RawMessage); ok {
		return raw, nil
	}
	if e.audit != nil {
		if t, ok := any(reply).(AuditTargeter); ok {
			if target, ws := t.AuditTarget(); target != "" {
				rec.Target, rec.Workspace = target, ws
			}
		}
	}
	return json.Marshal(reply)
}

// finish records the request (audited endpoints), sends the encoded reply
// (settle) or the error, records the duration and ends the request's span
// (nil with tracing off). The audit record is taken before the reply
// leaves, so a caller holding a reply knows its request is recorded.
// inline says the subscription's goroutine is answering, before micro's
// handler returns: only then may micro's own error bookkeeping (req.Error)
// be used.
func (e *endpoint) finish(req micro.Request, rec *AuditRecord, span trace.Span, body []byte, err error, inline bool) {
	var me *messages.Error
	if err != nil {
		me = e.contractError(err)
		rec.Code = me.Code
	}
	if e.audit != nil {
		rec.Subject = e.relative
		e.audit(*rec)
	}
	// The request is counted and its span ended before the reply goes out,
	// so a caller that has its answer finds both done.
	code := "ok"
	if me != nil {
		code = string(me.Code)
	}
	switch {
	case e.okDuration != nil && me == nil:
		e.okDuration.Observe(time.Since(rec.At).Seconds())
	case e.s.duration != nil:
		e.s.duration.WithLabelValues(e.subject, code).Observe(time.Since(rec.At).Seconds())
	}
	endSpan(span, rec.Caller.Principal, string(rec.Code))
	if me != nil {
		e.fail(req, me, inline)
	} else if rerr := req.Respond(body); rerr != nil {
		e.s.cfg.Log.Error("reply failed", "subject", e.subject, "err", rerr)
	}
}

// contractError is the one place where errors become the contract's: the
// service's mapping, then timeouts as unavailable and anything else as
// internal (its detail logged, never sent). Every error is counted by code.
func (e *endpoint) contractError(err error) *messages.Error {
	if e.s.cfg.Errors != nil {
		err = e.s.cfg.Errors(err)
	}
	var me *messages.Error
	switch {
	case errors.As(err, &me):
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		me = messages.Errorf(messages.CodeUnavailable, "the request timed out; try again")
	default:
		me = messages.Errorf(messages.CodeInternal, "internal error")
	}
	if me.Code == messages.CodeInternal || me.Code == messages.CodeUnavailable {
		e.s.cfg.Log.Error("request failed", "subject", e.subject, "code", me.Code, "err", err)
	}
	e.counts.mu.Lock()
	e.counts.errors[me.Code]++
	e.counts.mu.Unlock()
	return me
}

// fail sends me as the contract's error reply.
func (e *endpoint) fail(req micro.Request, me *messages.Error, inline bool) {
	body, _ := json.Marshal(messages.ErrorBody{Error: me})
	desc := me.Message
	if me.Code == messages.CodeRateLimited && me.RetryAfterSeconds > 0 {
		desc = fmt.Sprintf("%s (retry after %ds)", desc, me.RetryAfterSeconds)
	}
	if desc == "" {
		desc = string(me.Code)
	}
	status := strconv.Itoa(me.Code.Status())
	var rerr error
	if inline {
		// micro counts this error in its own stats (num_errors, last_error).
		rerr = req.Error(status, desc, body)
	} else {
		// From the pool, req.Error would race with micro reading the
		// request's error once the handler returned. The reply is the same:
		// micro's error headers and the body.
		rerr = req.Respond(body, micro.WithHeaders(micro.Headers{
			micro.ErrorHeader:     {desc},
			micro.ErrorCodeHeader: {status},
		}))
	}
	if rerr != nil {
		e.s.cfg.Log.Error("error reply failed", "subject", e.subject, "err", rerr)
	}
}

// Stats is micro's view of the service: what $SRV.STATS answers.
func (s *Service) Stats() micro.Stats { return s.svc.Stats() }

// Stop removes the endpoints and waits for the handlers in flight.
func (s *Service) Stop() error {
	err := s.svc.Stop()
	s.runMu.Lock()
	s.stopping = true
	s.runMu.Unlock()
	s.run.Wait()
	return err
}

// enter counts a handler into the pool, unless the service is stopping: a
// request the drained subscription still delivers after Stop is answered
// unavailable (another replica, or this one restarted, serves its retry).
func (s *Service) enter() bool {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.stopping {
		return false
	}
	s.run.Add(1)
	return true
}

// Decode reads a JSON request body into v. An empty body is read as {} (a
// request whose fields are all optional needs none); malformed JSON or
// invalid UTF-8, a body that is not an object, a field v does not have (names
// match exactly, not folding case), a field given twice, a value of the wrong
// type, or trailing data is an invalid_request naming what is wrong.
//
// It uses the JSON v2 implementation (github.com/go-json-experiment/json, the
// Go team's encoding/json/v2): strict by construction, and about four times
// faster than encoding/json's Decoder with DisallowUnknownFields, which
// matters on the serial path of a subscription. A duplicated name would
// otherwise be read as its last value, which another parser may read as its
// first. The hot path's bodies, in the plain form a Gateway sends, take a
// faster path still (decodeFast), held to this decoder's result by a fuzz
// test; anything else about them is this decoder's to read or refuse.
func Decode(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		data = emptyObject
	}
	if decodeFast(data, v) {
		return nil
	}
	if err := jsonv2.Unmarshal(data, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return decodeError(err)
	}
	return nil
}

var emptyObject = []byte("{}")

// maxFieldName bounds a field name quoted back in an error.
const maxFieldName = 64

func decodeError(err error) error {
	var se *jsonv2.SemanticError
	if errors.As(err, &se) {
		field := strings.Join(slices.Collect(se.JSONPointer.Tokens()), ".")
		switch {
		case errors.Is(se.Err, jsonv2.ErrUnknownName):
			return messages.Errorf(messages.CodeInvalidRequest, "unknown field %q", clip(field))
		case field == "" && se.JSONKind != '{':
			return messages.Errorf(messages.CodeInvalidRequest, "the request body must be a JSON object")
		case field != "" && se.GoType != nil:
			return messages.Errorf(messages.CodeInvalidRequest, "field %q: expected %s", clip(field), se.GoType)
		case field != "":
			return messages.Errorf(messages.CodeInvalidRequest, "field %q: invalid value", clip(field))
		}
	}
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) {
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return messages.Errorf(messages.CodeInvalidRequest, "field %q given more than once", clip(syn.JSONPointer.LastToken()))
		case strings.Contains(syn.Err.Error(), "after top-level value"):
			return messages.Errorf(messages.CodeInvalidRequest, "the request body holds more than one JSON value")
		}
	}
	return messages.Errorf(messages.CodeInvalidRequest, "malformed JSON request body")
}

func clip(s string) string {
	if len(s) > maxFieldName {
		return s[:maxFieldName] + "..."
	}
	return s
}
