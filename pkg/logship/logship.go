// Package logship ships the node's container logs to CloudWatch Logs.
//
// It wires the stages, each its own package, each depending only on
// stages before it, and each owning the type it hands on:
//
//	discover    finds the kubelet's log symlinks               -> discover.Target
//	tail        follows each file across rotations             -> tail.Chunk (lines, filepos.Identity, offsets)
//	parse       CRI or docker json-file lines, fragments
//	            joined, optional multiline                     -> parse.Entry
//	record      fluent-bit shaped JSON, in wire form           -> record.Chunk
//	batch       CloudWatch's limits                            -> batch.Batch
//	ship        sends, retries, reports what was accepted      -> filepos.Position per stream
//	checkpoint  remembers it across restarts
//
// filepos (a file's identity and a position in it) is the vocabulary the
// stages share; enrich supplies pod metadata beside them; naming fills the
// group and stream templates.
//
// Per container there are two goroutines: a reader (tail, parse, encode)
// and the stream's sender; the reader blocks when the sender's queue or the
// global buffer is full, so the log files themselves are the buffer. A
// tail.Keeper keeps that buffer from vanishing: it holds every file the
// kubelet rotates open from the moment it appears, also once the kubelet
// has compressed and deleted it, within --max-deleted-bytes and
// --max-deleted-hold; what it lets go of unread is counted, per pod, in
// logship_lost_lines_total and logship_lost_bytes_total.
package logship

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/pkg/logship/checkpoint"
	"github.com/nodekit/nodekit/pkg/logship/discover"
	"github.com/nodekit/nodekit/pkg/logship/enrich"
	"github.com/nodekit/nodekit/pkg/logship/filepos"
	"github.com/nodekit/nodekit/pkg/logship/naming"
	"github.com/nodekit/nodekit/pkg/logship/parse"
	"github.com/nodekit/nodekit/pkg/logship/record"
	"github.com/nodekit/nodekit/pkg/logship/ship"
	"github.com/nodekit/nodekit/pkg/logship/tail"
)

// Agent is the log shipper. New starts nothing; Run does the work.
type Agent struct {
	cfg     Config
	client  ship.Client
	meta    *enrich.Cache
	logger  *slog.Logger
	metrics *metrics
	sendM   *ship.Metrics
	now     func() time.Time

	include, exclude map[string]bool

	ready     chan struct{}
	readyOnce sync.Once
	sender    atomic.Pointer[ship.Sender] // set by Run
	sent      atomic.Bool                 // any records handed to a stream yet
	// notifier wakes readers on file events; set by Run before any
	// reader starts, nil when the kernel gives no file events.
	notifier *tail.Notifier
	// keeper holds every rotation of every file until it is read, within
	// the bounds on deleted files; set by Run before any reader starts.
	keeper atomic.Pointer[tail.Keeper]
	// store holds the checkpoints; set by Run.
	store atomic.Pointer[checkpoint.Store]

	mu      sync.Mutex
	targets map[string]*target
}

// New validates cfg. meta must be fed by the pod informer (see
// enrich.Cache); reg receives the logship_* metrics.
func New(cfg Config, client ship.Client, meta *enrich.Cache, reg prometheus.Registerer, logger *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("logship configuration: %w", err)
	}
	a := &Agent{
		cfg: cfg, client: client, meta: meta, logger: logger, now: time.Now,
		include: set(cfg.IncludeNamespaces), exclude: set(cfg.ExcludeNamespaces),
		ready: make(chan struct{}), targets: map[string]*target{},
	}
	meta.OnFinished(a.podFinished)
	var err error
	if a.sendM, err = ship.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("registering sender metrics: %w", err)
	}
	if a.metrics, err = newMetrics(reg, a); err != nil {
		return nil, fmt.Errorf("registering reader metrics: %w", err)
	}
	return a, nil
}

func set(l []string) map[string]bool {
	m := make(map[string]bool, len(l))
	for _, s := range l {
		m[s] = true
	}
	return m
}

// Ready is closed once checkpoints are loaded and a first batch was
// accepted (or there was nothing to send at start).
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Readiness is logship's /readyz condition: ready once Ready is closed,
// except while a failure only an operator can fix (access denied, a group
// logship may not create) holds up a stream, while CloudWatch Logs has
// been out of reach for a while, or while the checkpoints cannot be saved
// (a full disk); the reason then says which and how to fix it. Streams
// keep retrying meanwhile: nothing is dropped.
func (a *Agent) Readiness() (bool, string) {
	if st := a.store.Load(); st != nil {
		if since, err, failing := st.Failing(); failing {
			return false, fmt.Sprintf("saving checkpoints in %s failing for %v (%v): shipping paused until a save succeeds; free space on that disk",
				a.cfg.StateDir, a.now().Sub(since).Round(time.Second), err)
		}
	}
	if s := a.sender.Load(); s != nil {
		if why, blocked := s.Blocked(); blocked {
			return false, why
		}
	}
	select {
	case <-a.ready:
		return true, ""
	default:
		return false, "no batch accepted by CloudWatch Logs yet"
	}
}

func (a *Agent) markReady() { a.readyOnce.Do(func() { close(a.ready) }) }

// target is one container log being shipped.
type target struct {
	t      discover.Target
	cancel context.CancelFunc
	done   chan struct{}
	// follower is set once the reader opened the file; Drain goes there.
	follower atomic.Pointer[tail.Follower]
	drain    atomic.Bool
	drained  chan struct{} // closed when drain is first set
	// finished: the pod writes no more (deleted, or done) though its
	// file stays until the kubelet removes the container: the file is
	// read to its end and let go, and the target parks until then.
	finished atomic.Bool
	// optedOut is closed once the pod opted out and every line read
	// before was handed on: nothing more is read until the container
	// goes away.
	optedOut chan struct{}
	// For the metrics collector: how far the file was read and how far
	// CloudWatch accepted it. Both name the file: after a rotation the
	// reader is in another file than the last accepted record, and
	// offsets alone would compare positions in different files.
	read  atomic.Pointer[filePos]
	acked atomic.Pointer[ackedPos]
}

// finish has the reader read t's file to its end and let it go: its pod
// writes no more. Dead containers of deleted pods stay on disk until the
// kubelet's next garbage collection (a minute), and those of completed
// Jobs until their pods are deleted: following each of them would hold a
// file, two goroutines and a stream for nothing.
func (t *target) finish() {
	if !t.finished.Swap(true) {
		if f := t.follower.Load(); f != nil {
			f.Drain()
		}
	}
}

// podFinished finishes the targets of the pod with uid.
func (a *Agent) podFinished(uid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.targets {
		if t.t.PodUID == uid {
			t.finish()
		}
	}
}

// errReadToEnd ends a reader whose file was read to its end and every
// record accepted (drained or finished): the target waits for the
// container to go, then forgets its checkpoint.
var errReadToEnd = errors.New("container log read to its end")

// filePos is a position in one file.
type filePos struct {
	id     filepos.Identity
	offset int64
}

// ackedPos is the position after the last record CloudWatch accepted and
// that record's timestamp (Unix ms).
type ackedPos struct {
	filePos
	ts int64
}

// lag is how far behind the reader CloudWatch is: the age at now of the
// last accepted record while anything read since is unaccepted, else 0.
func (tg *target) lag(now time.Time) time.Duration {
	read, acked := tg.read.Load(), tg.acked.Load()
	if read == nil || acked == nil || acked.ts <= 0 {
		return 0
	}
	if acked.id == read.id && acked.offset >= read.offset {
		return 0
	}
	return now.Sub(time.UnixMilli(acked.ts))
}

// Run ships until ctx ends. Records not yet accepted are read again on the
// next start, so stopping at any moment loses nothing.
func (a *Agent) Run(ctx context.Context) error {
	store, err := checkpoint.Open(a.cfg.StateDir, a.logger)
	if err != nil {
		return err
	}
	a.store.Store(store)
	sender, err := ship.New(ship.Config{
		BatchWait: a.cfg.BatchWait, RetentionDays: int32(a.cfg.RetentionDays),
		MaxBufferBytes: a.cfg.MaxBuffer, MaxBackoff: a.cfg.MaxBackoff,
	}, a.client, store, a.sendM, a.logger)
	if err != nil {
		return err
	}
	a.sender.Store(sender)
	storeCtx, stopStore := context.WithCancel(context.Background())
	storeDone := make(chan error, 1)
	go func() { storeDone <- store.Run(storeCtx) }()

	// File events wake the readers; without them every file is polled.
	if n, err := tail.NewNotifier(a.logger); err != nil {
		a.logger.Warn("no file events; polling every file", "err", err)
	} else {
		nctx, stopNotify := context.WithCancel(ctx)
		notifyDone := make(chan error, 1)
		go func() { notifyDone <- n.Run(nctx) }()
		defer func() {
			stopNotify()
			if err := <-notifyDone; err != nil {
				a.logger.Warn("file events stopped", "err", err)
			}
		}()
		a.notifier = n
	}

	keeper := tail.NewKeeper(a.cfg.Tail, a.logger)
	a.keeper.Store(keeper)
	kctx, stopKeeper := context.WithCancel(ctx)
	keeperDone := make(chan error, 1)
	go func() { keeperDone <- keeper.Run(kctx) }()
	defer func() {
		stopKeeper()
		<-keeperDone
	}()

	var wg sync.WaitGroup
	watcher := discover.NewWatcher(a.cfg.ContainersDir, a.cfg.Rescan, a.logger)
	first := true
	err = watcher.Run(ctx, func(found map[string]discover.Target) {
		// An empty first scan (directory not there yet at boot) proves
		// nothing; forgetting then would re-ship every file.
		if first && len(found) > 0 {
			first = false
			a.forgetStale(ctx, store, found)
		}
		a.sync(ctx, &wg, sender, store, found)
		// Ready means positions are loaded and CloudWatch took a batch;
		// with nothing to send since the start there is nothing to prove.
		if !a.sent.Load() {
			a.markReady()
		}
	})
	// Readers and senders stop with ctx; wait for them before the final
	// checkpoint write.
	a.mu.Lock()
	for _, t := range a.targets {
		t.cancel()
	}
	a.mu.Unlock()
	wg.Wait()
	stopStore()
	return errors.Join(err, <-storeDone)
}

// forgetStale drops the checkpoints of containers whose links went away
// while logship was not running: there is nothing left to follow.
func (a *Agent) forgetStale(ctx context.Context, store *checkpoint.Store, found map[string]discover.Target) {
	for _, key := range store.Keys() {
		if _, ok := found[key]; ok {
			continue
		}
		a.logger.Info("forgetting the checkpoint of a container that is gone", "key", key)
		if err := store.Delete(ctx, key); err != nil {
			a.logger.Warn("removing a stale checkpoint", "key", key, "err", err)
		}
	}
}

// sync starts readers for new targets and drains removed ones.
func (a *Agent) sync(ctx context.Context, wg *sync.WaitGroup, sender *ship.Sender, store *checkpoint.Store, found map[string]discover.Target) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, t := range a.targets {
		nt, ok := found[key]
		if ok && nt.Path == t.t.Path {
			continue
		}
		// Removed or re-pointed: read what is left, then let go. A
		// re-pointed link gets a fresh target once this one is done.
		if !t.drain.Swap(true) {
			close(t.drained)
			a.logger.Debug("container log removed; draining", "key", key)
			if f := t.follower.Load(); f != nil {
				f.Drain()
			}
		}
	}
	for key, t := range found {
		if _, ok := a.targets[key]; ok {
			continue
		}
		if !a.wanted(t.Namespace) {
			continue
		}
		tctx, cancel := context.WithCancel(ctx)
		tg := &target{t: t, cancel: cancel, done: make(chan struct{}), drained: make(chan struct{}), optedOut: make(chan struct{})}
		a.targets[key] = tg
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(tg.done)
			defer cancel()
			err := a.runTarget(tctx, tg, sender, store)
			if errors.Is(err, errReadToEnd) {
				// Kept (so a rescan does not follow the file again),
				// holding nothing but this goroutine, until the
				// container goes (at once when that is what drained
				// it); then its checkpoint goes: the file is gone for
				// good.
				select {
				case <-tctx.Done():
				case <-tg.drained:
					if tctx.Err() == nil {
						if err := store.Delete(tctx, key); err != nil {
							a.logger.Warn("removing checkpoint of a finished container", "key", key, "err", err)
						}
					}
				}
				err = nil
			}
			if err != nil && tctx.Err() == nil {
				a.logger.Error("shipping container log stopped; it restarts at the next rescan", "key", key, "err", err)
			}
			a.mu.Lock()
			if a.targets[key] == tg {
				delete(a.targets, key)
			}
			a.mu.Unlock()
		}()
	}
}

func (a *Agent) wanted(ns string) bool {
	if a.exclude[ns] {
		return false
	}
	return len(a.include) == 0 || a.include[ns]
}

// names fills the group and stream templates for t.
func (a *Agent) names(t discover.Target) (group, stream string) {
	v := naming.Values{Cluster: a.cfg.ClusterName, Node: a.cfg.NodeName, Namespace: t.Namespace,
		Pod: t.Pod, Container: t.Container, ContainerID: t.ContainerID}
	return naming.Group(a.cfg.LogGroup, v), naming.Stream(a.cfg.LogStream, v)
}

// errOptedOut stops a reader whose pod was annotated not to ship.
var errOptedOut = errors.New("pod opted out of log shipping")

// chunkBytes is the size of the record buffers handed to a stream. A
// chunk holds records without their metadata tail (about 150 bytes each
// for ~110-byte lines): 128 KiB is ~900 records, and a full batch a
// handful of chunks.
const chunkBytes = 128 << 10

// quietChunkBytes is the buffer a chunk starts with when the read its
// records come from is at most quietRead bytes (a quiet container's few
// lines) and no sent chunk's storage is free. Every container's chunk is
// held until its batch goes: a node's many quiet containers at the full
// size (and more so under pod churn, each new pod logging its first
// lines) held more heap than the busy ones. A burst's records never grow
// a small chunk: it is sent first, and theirs get full-size ones.
const (
	quietRead       = 4 << 10
	quietChunkBytes = 8 << 10
)

// runTarget reads, parses and encodes one container's log and feeds its
// stream until the log is drained or ctx ends.
func (a *Agent) runTarget(ctx context.Context, tg *target, sender *ship.Sender, store *checkpoint.Store) error {
	t := tg.t
	logger := a.logger.With("namespace", t.Namespace, "pod", t.Pod, "container", t.Container)
	// Open the file first: a rotation while we wait for metadata must
	// not skip the lines of the file as it is now.
	var from *filepos.Position
	if pos, ok := store.Get(t.Key()); ok {
		from = &pos
	}
	cfg := a.cfg.Tail
	maxEvent := a.cfg.MaxEventBytes
	cfg.CountLines = func(data []byte) int { return parse.CountLines(data, maxEvent) }
	cfg.OnLoss = func(l tail.Loss) { a.metrics.lost(t.Namespace, t.Pod, l) }
	fl, err := tail.Open(t.Path, from, cfg, logger)
	if err != nil {
		return err
	}
	defer fl.Close()
	if a.notifier != nil {
		defer a.notifier.Attach(fl)()
	}
	if k := a.keeper.Load(); k != nil {
		defer k.Keep(fl)()
	}
	tg.follower.Store(fl)
	defer tg.follower.Store(nil)
	if tg.drain.Load() || tg.finished.Load() {
		fl.Drain()
	}
	a.metrics.filesOpen.Inc()
	defer a.metrics.filesOpen.Dec()

	meta, ok := a.meta.Wait(ctx, t.PodUID, t.Namespace, t.Pod, a.cfg.MetadataWait)
	if !ok && ctx.Err() == nil {
		if saved, found := savedMeta(store, t); found {
			// The pod was deleted while logship was down: its last lines
			// keep the labels it had.
			meta, ok = saved, true
			logger.Info("pod unknown to the API server; using the metadata saved with the checkpoint", "pod_uid", saved.UID)
		} else {
			logger.Warn("no pod metadata yet; shipping without labels until it arrives", "pod_uid", t.PodUID)
		}
	}
	keep := func(m enrich.Meta) {
		if data, err := json.Marshal(m); err == nil {
			store.SetMeta(t.Key(), data)
		}
	}
	if ok {
		keep(meta)
	}
	if meta.Disabled {
		logger.Info("pod opted out of log shipping", "annotation", enrich.Annotation)
		close(tg.optedOut)
		// Keep the target (so it is not restarted at each rescan) until
		// its container goes away.
		select {
		case <-ctx.Done():
		case <-tg.drained:
		}
		return nil
	}
	if meta.UID != "" {
		a.meta.Acquire(meta.UID)
		defer a.meta.Release(meta.UID)
	}
	if a.meta.Finished(cmp.Or(meta.UID, t.PodUID)) {
		// Found after its pod finished (the rescan runs every 10 s).
		tg.finish()
	}

	group, name := a.names(t)
	stream := sender.NewStream(group, name, t.Key(), t.Namespace, func(pos filepos.Position, ts int64) {
		tg.acked.Store(&ackedPos{filePos: filePos{id: pos.ID, offset: pos.Offset}, ts: ts})
		a.markReady()
	})
	streamDone := make(chan error, 1)
	go func() { streamDone <- stream.Run(ctx) }()

	r := &reader{a: a, t: t, meta: meta, keepMeta: keep, logger: logger, stream: stream}
	if err := r.newEncoder(); err != nil {
		stream.Close()
		<-streamDone
		return err
	}
	err = r.loop(ctx, fl, tg)
	if errors.Is(err, errOptedOut) {
		// Lines already handed over are still sent; then nothing more
		// until the container goes away.
		logger.Info("pod opted out of log shipping", "annotation", enrich.Annotation)
		stream.Close()
		if err := <-streamDone; err != nil {
			return err
		}
		close(tg.optedOut)
		select {
		case <-ctx.Done():
		case <-tg.drained:
		}
		return nil
	}
	if errors.Is(err, io.EOF) {
		// Drained or finished: let the stream send the rest.
		stream.Close()
		if err := <-streamDone; err != nil {
			return err
		}
		logger.Debug("container log read to its end")
		return errReadToEnd
	}
	stream.Close()
	<-streamDone
	return err
}

// savedMeta returns the pod metadata saved with t's checkpoint, if it is
// t's pod's.
func savedMeta(store *checkpoint.Store, t discover.Target) (enrich.Meta, bool) {
	data, ok := store.Meta(t.Key())
	if !ok {
		return enrich.Meta{}, false
	}
	var m enrich.Meta
	if err := json.Unmarshal(data, &m); err != nil || (t.PodUID != "" && m.UID != t.PodUID) {
		return enrich.Meta{}, false
	}
	return m, true
}

// reader is the per-target parsing and encoding state.
type reader struct {
	a    *Agent
	t    discover.Target
	meta enrich.Meta
	// keepMeta saves the pod's metadata with the stream's checkpoint.
	keepMeta func(enrich.Meta)
	logger   *slog.Logger
	stream   *ship.Stream

	enc    *record.Encoder
	parser *parse.Parser
	ml     *parse.Multiline

	// The chunk being filled for the stream, and the file it comes from.
	out     *record.Chunk
	curPath string
	curID   filepos.Identity
	// read is the size of the read being parsed: it sizes a new chunk.
	read  int
	lines prometheus.Counter
	bytes prometheus.Counter
}

func (r *reader) newEncoder() error {
	k := record.Kubernetes{
		PodName: r.t.Pod, NamespaceName: r.t.Namespace, ContainerName: r.t.Container, DockerID: r.t.ContainerID,
		PodID: r.meta.UID, Host: r.meta.Host, ContainerImage: r.meta.Images[r.t.Container], Labels: r.meta.Labels,
	}
	if k.PodID == "" {
		k.PodID = r.t.PodUID
	}
	if k.Host == "" {
		k.Host = r.a.cfg.NodeName
	}
	enc, err := record.New(k, r.a.cfg.MaxEventBytes)
	if err != nil {
		return err
	}
	r.enc = enc
	return nil
}

func (r *reader) newParser() {
	emit := r.entry
	re := r.a.cfg.Multiline[r.t.Namespace+"/"+r.t.Container]
	if re == nil {
		re = r.a.cfg.Multiline[r.t.Namespace]
	}
	r.ml = nil
	if re != nil {
		r.ml = parse.NewMultiline(re, r.a.cfg.MaxEventBytes, r.entry)
		emit = r.ml.Add
	}
	r.parser = parse.New(parse.Unknown, r.a.cfg.MaxEventBytes, emit)
}

// entry encodes one parsed entry into the current chunk.
func (r *reader) entry(e parse.Entry) {
	if r.out == nil {
		// Full-size buffers for a busy container: they come from the
		// sender's spares, and the memory budget then bounds how many
		// readers fill buffers at once. (Starting every chunk small and
		// growing it raised the suite's peak RSS from 29 to 35 MiB.)
		size := chunkBytes + chunkBytes/4
		if r.read <= quietRead {
			size = quietChunkBytes
		}
		r.out = r.stream.NewChunk(r.curPath, r.curID, size)
		// Every record of the chunk ends with the encoder's tail (the pod's
		// metadata), held once: a metadata change starts a new chunk.
		r.out.Tail = r.enc.WireTail()
	}
	ts := e.Time / 1e6
	if e.Time == 0 {
		ts = r.a.now().UnixMilli()
	}
	// Records go in their wire form (escaped for the request body), so
	// the sender reads bodies from the chunks as they are.
	r.out.Buf = r.enc.AppendWire(r.out.Buf, e.Log, e.Stream.String(), e.TimeRaw, r.a.now, func(start, end, size int) {
		r.out.Events = append(r.out.Events, record.Event{Timestamp: ts, Start: start, End: end, Size: size, Pos: e.Pos})
	})
}

// send hands the current chunk to the stream.
func (r *reader) send(ctx context.Context) error {
	if r.out == nil || len(r.out.Events) == 0 {
		return nil
	}
	c := r.out
	r.out = nil
	r.a.sent.Store(true)
	return r.stream.Send(ctx, c)
}

func (r *reader) loop(ctx context.Context, fl *tail.Follower, tg *target) error {
	r.newParser()
	r.lines = r.a.metrics.linesRead.WithLabelValues(r.t.Namespace)
	r.bytes = r.a.metrics.bytesRead.WithLabelValues(r.t.Namespace)
	version := r.meta.Version
	for {
		var c tail.Chunk
		var err error
		if r.out != nil && len(r.out.Events) > 0 {
			// Records are gathered across reads into chunks of about
			// chunkBytes (so a chunk's budget weight is mostly records),
			// yet never held back while the file has nothing more.
			var ok bool
			if c, ok, err = fl.TryNext(); err == nil && !ok {
				if err := r.send(ctx); err != nil {
					return err
				}
				continue
			}
		} else {
			nctx := ctx
			var cancel context.CancelFunc = func() {}
			if r.ml != nil && r.ml.Pending() {
				// Wake up to flush a trailing multiline message.
				nctx, cancel = context.WithTimeout(ctx, r.a.cfg.MultilineWait)
			}
			c, err = fl.Next(nctx)
			cancel()
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				r.ml.Flush()
				if err := r.send(ctx); err != nil {
					return err
				}
				continue
			}
			if errors.Is(err, io.EOF) {
				var end int64
				if p := tg.read.Load(); p != nil {
					end = p.offset
				}
				r.parser.Flush(end)
				if r.ml != nil {
					r.ml.Flush()
				}
				if err := r.send(ctx); err != nil {
					return err
				}
			}
			return err
		}
		if err := r.chunk(ctx, c, tg, &version); err != nil {
			return err
		}
	}
}

// chunk parses one chunk read from the file into records, handing full
// record chunks to the stream as they fill.
func (r *reader) chunk(ctx context.Context, c tail.Chunk, tg *target, version *uint64) error {
	if c.ID != r.curID || c.Path != r.curPath {
		// Another file: the chunk in progress belongs to the old one.
		if err := r.send(ctx); err != nil {
			return err
		}
		r.curPath, r.curID = c.Path, c.ID
	}
	uid := r.meta.UID
	if uid == "" {
		uid = r.t.PodUID
	}
	if m, ok := r.a.meta.Get(uid, r.t.Namespace, r.t.Pod); ok && m.Version != *version {
		// Labels arrived or changed: re-encode the metadata once.
		*version = m.Version
		r.meta = m
		r.keepMeta(m)
		if m.Disabled {
			return errOptedOut
		}
		// Records so far end in the old metadata: they go in their own
		// chunk, whose escaped suffix is the old one.
		if err := r.send(ctx); err != nil {
			return err
		}
		if err := r.newEncoder(); err != nil {
			return err
		}
	}
	if r.out != nil && cap(r.out.Buf) < chunkBytes && len(c.Data) > cap(r.out.Buf)-len(r.out.Buf) {
		// A small chunk this read would overflow goes as it is.
		if err := r.send(ctx); err != nil {
			return err
		}
	}
	r.read = len(c.Data)
	n, err := r.scan(ctx, c)
	end := c.Start + int64(len(c.Data))
	if err == nil {
		// Before the counters: a line counted as read is in the lag.
		tg.read.Store(&filePos{id: c.ID, offset: end})
	}
	r.lines.Add(float64(n))
	r.bytes.Add(float64(len(c.Data)))
	if err != nil {
		return err
	}
	if c.Final {
		if c.Continued {
			// A line split by the rotation ends in the next file.
			r.parser.NextFile()
			if r.ml != nil {
				r.ml.Flush()
			}
		} else {
			r.parser.Flush(end)
			if r.ml != nil {
				r.ml.Flush()
			}
			r.newParser()
		}
		// The next file's records go in a chunk of their own.
		return r.send(ctx)
	}
	return nil
}

// scan feeds a chunk's lines to the parser, handing the records to the
// stream whenever about chunkBytes of them are ready, and returns how many
// lines there were.
func (r *reader) scan(ctx context.Context, c tail.Chunk) (int, error) {
	data, off, n := c.Data, c.Start, 0
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		l, next := data, len(data)
		if i >= 0 {
			l, next = data[:i], i+1
		}
		r.parser.Line(l, off, off+int64(next))
		off += int64(next)
		data = data[next:]
		n++
		if r.out != nil && len(r.out.Buf) >= chunkBytes {
			if err := r.send(ctx); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}
