package deploy_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/nexus-broker/nexus/services/admin"
	"github.com/nexus-broker/nexus/services/handshake"
	"github.com/nexus-broker/nexus/services/refresher"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsauth"
)

var loaders = map[string]func(*config.Loader){
	"vault":     func(l *config.Loader) { vault.LoadConfig(l) },
	"handshake": func(l *config.Loader) { handshake.LoadConfig(l) },
	"admin":     func(l *config.Loader) { admin.LoadConfig(l) },
	"refresher": func(l *config.Loader) { refresher.LoadConfig(l) },
}

// manifests is every object of deploy/k8s, decoded into its API type.
type manifests struct {
	namespaces   []*corev1.Namespace
	secrets      map[string]*corev1.Secret
	configMaps   map[string]*corev1.ConfigMap
	services     []*corev1.Service
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	pdbs         []*policyv1.PodDisruptionBudget
	ingresses    []*networkingv1.Ingress
}

// workload is a pod template with where it comes from.
type workload struct {
	name string
	pod  *corev1.PodTemplateSpec
}

func (m *manifests) workloads() []workload {
	var out []workload
	for _, s := range m.statefulSets {
		out = append(out, workload{"StatefulSet " + s.Name, &s.Spec.Template})
	}
	for _, d := range m.deployments {
		out = append(out, workload{"Deployment " + d.Name, &d.Spec.Template})
	}
	return out
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeStrict decodes one manifest into the API type its apiVersion and
// kind name, refusing unknown and duplicated fields.
func (m *manifests) decode(file string, doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		o := &corev1.Namespace{}
		m.namespaces, obj = append(m.namespaces, o), o
	case "v1 Secret":
		o := &corev1.Secret{}
		defer func() { m.secrets[o.Name] = o }()
		obj = o
	case "v1 ConfigMap":
		o := &corev1.ConfigMap{}
		defer func() { m.configMaps[o.Name] = o }()
		obj = o
	case "v1 Service":
		o := &corev1.Service{}
		m.services, obj = append(m.services, o), o
	case "apps/v1 StatefulSet":
		o := &appsv1.StatefulSet{}
		m.statefulSets, obj = append(m.statefulSets, o), o
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		m.deployments, obj = append(m.deployments, o), o
	case "policy/v1 PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		m.pdbs, obj = append(m.pdbs, o), o
	case "networking.k8s.io/v1 Ingress":
		o := &networkingv1.Ingress{}
		m.ingresses, obj = append(m.ingresses, o), o
	default:
		return fmt.Errorf("apiVersion %q kind %q is not one this test knows", tm.APIVersion, tm.Kind)
	}
	return yaml.UnmarshalStrict(doc, obj)
}

// kustomization is the part of kustomization.yaml used here; decoded
// strictly, so a field kustomize has but this test does not know fails.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// checkManifests returns every problem of the manifests in dir, reading
// deploy/nats/users.conf from usersConf.
func checkManifests(dir, usersConf string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	m := &manifests{secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return []string{fmt.Sprintf("no manifests in %s (%v)", dir, err)}
	}
	var resources []string
	var kust kustomization
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return []string{err.Error()}
		}
		base := filepath.Base(f)
		if base == "kustomization.yaml" {
			if err := yaml.UnmarshalStrict(raw, &kust); err != nil {
				bad("%s: %v", base, err)
			}
			continue
		}
		if base != "secrets.yaml" {
			resources = append(resources, base)
		}
		for i, doc := range docSep.Split(string(raw), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			if err := m.decode(base, []byte(doc)); err != nil {
				bad("%s, document %d: %v", base, i+1, err)
			}
		}
	}
	sort.Strings(resources)
	listed := slices.Clone(kust.Resources)
	sort.Strings(listed)
	if !slices.Equal(listed, resources) {
		bad("kustomization.yaml lists %v, the directory has %v (and secrets.yaml, the templates, left out)", listed, resources)
	}
	if kust.Namespace != "nexus" {
		bad("kustomization.yaml: namespace is %q, want nexus", kust.Namespace)
	}

	// Every object is in the namespace.
	meta := func(kind string, o metav1.ObjectMeta) {
		if o.Namespace != "nexus" {
			bad("%s %s: namespace %q, want nexus", kind, o.Name, o.Namespace)
		}
	}
	if len(m.namespaces) != 1 || m.namespaces[0].Name != "nexus" {
		bad("want one Namespace, nexus")
	}
	for _, s := range m.secrets {
		meta("Secret", s.ObjectMeta)
		if len(s.Data) > 0 {
			bad("Secret %s: has data; templates hold no values", s.Name)
		}
		for k, v := range s.StringData {
			if v != "" {
				bad("Secret %s: %s has a value; templates hold no values", s.Name, k)
			}
		}
	}
	for _, c := range m.configMaps {
		meta("ConfigMap", c.ObjectMeta)
	}
	for _, s := range m.services {
		meta("Service", s.ObjectMeta)
	}
	for _, s := range m.statefulSets {
		meta("StatefulSet", s.ObjectMeta)
	}
	for _, d := range m.deployments {
		meta("Deployment", d.ObjectMeta)
	}
	for _, p := range m.pdbs {
		meta("PodDisruptionBudget", p.ObjectMeta)
	}
	for _, i := range m.ingresses {
		meta("Ingress", i.ObjectMeta)
	}

	// Services select pods, on ports those pods have.
	selected := func(sel map[string]string) []workload {
		var out []workload
		if len(sel) == 0 {
			return nil
		}
		for _, w := range m.workloads() {
			if labels.SelectorFromSet(sel).Matches(labels.Set(w.pod.Labels)) {
				out = append(out, w)
			}
		}
		return out
	}
	services := map[string]*corev1.Service{}
	for _, s := range m.services {
		services[s.Name] = s
		ws := selected(s.Spec.Selector)
		if len(ws) == 0 {
			bad("Service %s: selector %v matches no pod", s.Name, s.Spec.Selector)
		}
		for _, w := range ws {
			for _, p := range s.Spec.Ports {
				if !hasPort(w.pod, p.TargetPort.String()) {
					bad("Service %s: targetPort %s is not a port of %s", s.Name, p.TargetPort.String(), w.name)
				}
			}
		}
	}
	// Workloads select their own pods.
	for _, s := range m.statefulSets {
		selfSelect("StatefulSet "+s.Name, s.Spec.Selector, &s.Spec.Template, bad)
	}
	for _, d := range m.deployments {
		selfSelect("Deployment "+d.Name, d.Spec.Selector, &d.Spec.Template, bad)
	}
	// A disruption budget for every workload.
	for _, w := range m.workloads() {
		found := false
		for _, p := range m.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err == nil && !sel.Empty() && sel.Matches(labels.Set(w.pod.Labels)) {
				found = true
			}
		}
		if !found {
			bad("%s: no PodDisruptionBudget selects its pods", w.name)
		}
	}
	for _, p := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			bad("PodDisruptionBudget %s: %v", p.Name, err)
			continue
		}
		matched := false
		for _, w := range m.workloads() {
			if !sel.Empty() && sel.Matches(labels.Set(w.pod.Labels)) {
				matched = true
			}
		}
		if !matched {
			bad("PodDisruptionBudget %s: selects no pod", p.Name)
		}
	}
	// One Ingress, to the handshake only.
	if len(m.ingresses) != 1 {
		bad("want one Ingress (the handshake's), have %d", len(m.ingresses))
	}
	for _, in := range m.ingresses {
		if len(in.Spec.TLS) == 0 {
			bad("Ingress %s: no TLS", in.Name)
		}
		for _, r := range in.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				b := p.Backend.Service
				if b == nil || b.Name != "handshake" {
					bad("Ingress %s: a backend other than the handshake's Service", in.Name)
					continue
				}
				s := services[b.Name]
				if s == nil {
					bad("Ingress %s: Service %s does not exist", in.Name, b.Name)
					continue
				}
				if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool {
					return (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
				}) {
					bad("Ingress %s: Service %s has no port %v", in.Name, b.Name, b.Port)
				}
			}
		}
	}

	// Every container: probes on its own ports, resources, a locked-down
	// security context, and env references that exist.
	for _, w := range m.workloads() {
		ps := w.pod.Spec.SecurityContext
		if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
			bad("%s: pod securityContext without runAsNonRoot: true", w.name)
		}
		for _, c := range w.pod.Spec.Containers {
			where := w.name + " container " + c.Name
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				bad("%s: securityContext without readOnlyRootFilesystem: true", where)
			}
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				bad("%s: securityContext without allowPrivilegeEscalation: false", where)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[r]; !ok {
					bad("%s: no %s request", where, r)
				}
				if _, ok := c.Resources.Limits[r]; !ok {
					bad("%s: no %s limit", where, r)
				}
			}
			for _, p := range []struct {
				kind string
				pr   *corev1.Probe
			}{{"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}, {"startupProbe", c.StartupProbe}} {
				if p.pr == nil {
					if p.kind != "startupProbe" {
						bad("%s: no %s", where, p.kind)
					}
					continue
				}
				if p.pr.HTTPGet == nil {
					bad("%s: %s is not an httpGet", where, p.kind)
					continue
				}
				if !hasPort(w.pod, p.pr.HTTPGet.Port.String()) {
					bad("%s: %s on port %s, which the container does not have", where, p.kind, p.pr.HTTPGet.Port.String())
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					if s := m.secrets[r.Name]; s == nil {
						bad("%s: %s: Secret %s does not exist", where, e.Name, r.Name)
					} else if _, ok := s.StringData[r.Key]; !ok {
						bad("%s: %s: Secret %s has no key %s", where, e.Name, r.Name, r.Key)
					}
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					if cm := m.configMaps[r.Name]; cm == nil {
						bad("%s: %s: ConfigMap %s does not exist", where, e.Name, r.Name)
					} else if _, ok := cm.Data[r.Key]; !ok {
						bad("%s: %s: ConfigMap %s has no key %s", where, e.Name, r.Name, r.Key)
					}
				}
			}
			for _, v := range w.pod.Spec.Volumes {
				if v.ConfigMap != nil && m.configMaps[v.ConfigMap.Name] == nil {
					bad("%s: volume %s: ConfigMap %s does not exist", w.name, v.Name, v.ConfigMap.Name)
				}
			}
		}
	}

	// The four services: two replicas each, probes on /readyz and
	// /healthz of the listener the configuration opens, and an environment
	// the service reads and accepts.
	seen := map[string]bool{}
	for _, d := range m.deployments {
		svc := d.Spec.Template.Labels["app.kubernetes.io/name"]
		if loaders[svc] == nil {
			bad("Deployment %s: app.kubernetes.io/name %q is not a service", d.Name, svc)
			continue
		}
		seen[svc] = true
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
			bad("Deployment %s: want 2 replicas", d.Name)
		}
		if len(d.Spec.Template.Spec.Containers) != 1 {
			bad("Deployment %s: want one container", d.Name)
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		env, read, envProblems := containerEnv(svc, c, m)
		for _, p := range envProblems {
			bad("Deployment %s: %s", d.Name, p)
		}
		for _, e := range c.Env {
			if !read[e.Name] && !usedInOther(c.Env, e.Name) {
				bad("Deployment %s: sets %s, which the %s does not read", d.Name, e.Name, svc)
			}
		}
		probeAddr := env["HTTP_ADDR"]
		if svc == "handshake" {
			probeAddr = env["INTERNAL_HTTP_ADDR"]
		}
		_, probePort, _ := net.SplitHostPort(probeAddr)
		for _, p := range []struct {
			pr   *corev1.Probe
			path string
		}{{c.ReadinessProbe, "/readyz"}, {c.LivenessProbe, "/healthz"}} {
			if p.pr == nil || p.pr.HTTPGet == nil {
				continue
			}
			if p.pr.HTTPGet.Path != p.path {
				bad("Deployment %s: probe on %s, want %s", d.Name, p.pr.HTTPGet.Path, p.path)
			}
			if n := portNumber(c, p.pr.HTTPGet.Port.String()); strconv.Itoa(int(n)) != probePort {
				bad("Deployment %s: probe on port %d, but the %s serves %s on %q", d.Name, n, svc, p.path, probeAddr)
			}
		}
		servers := config.NATSServers(env["NATS_URL"])
		for i := range 3 {
			host := fmt.Sprintf("@nats-%d.nats:4222", i)
			if !slices.ContainsFunc(servers, func(s string) bool { return strings.Contains(s, host) }) {
				bad("Deployment %s: NATS_URL does not name nats-%d.nats", d.Name, i)
			}
		}
		if !strings.HasPrefix(env["NATS_URL"], "nats://"+svc+":") {
			bad("Deployment %s: NATS_URL is not the %s's NATS user", d.Name, svc)
		}
		switch svc {
		case "vault":
			if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
				return e.Name == "VAULT_REPLICA_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
			}) {
				bad("Deployment %s: VAULT_REPLICA_ID is not the pod's name (fieldRef metadata.name)", d.Name)
			}
		case "refresher":
			if env["EVENTS_REPLICAS"] != "3" {
				bad("Deployment %s: EVENTS_REPLICAS is %q, want 3", d.Name, env["EVENTS_REPLICAS"])
			}
		}
	}
	for svc := range loaders {
		if !seen[svc] {
			bad("no Deployment of the %s", svc)
		}
	}

	problems = append(problems, checkNATS(m, services, usersConf)...)
	sort.Strings(problems)
	return problems
}

// checkNATS: a 3-node StatefulSet behind a headless Service, whose config
// loads with JetStream, the production users and routes to every pod.
func checkNATS(m *manifests, services map[string]*corev1.Service, usersConf string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var sts *appsv1.StatefulSet
	for _, s := range m.statefulSets {
		if s.Name == "nats" {
			sts = s
		}
	}
	if sts == nil {
		return []string{"no StatefulSet nats"}
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		bad("StatefulSet nats: want 3 replicas")
	}
	hs := services[sts.Spec.ServiceName]
	if hs == nil {
		bad("StatefulSet nats: serviceName %q is not a Service", sts.Spec.ServiceName)
	} else if hs.Spec.ClusterIP != corev1.ClusterIPNone {
		bad("Service %s: not headless (clusterIP: None)", hs.Name)
	}
	var cm *corev1.ConfigMap
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			cm = m.configMaps[v.ConfigMap.Name]
		}
	}
	if cm == nil {
		return append(problems, "StatefulSet nats: no ConfigMap volume")
	}
	want, err := os.ReadFile(usersConf)
	if err != nil {
		return append(problems, err.Error())
	}
	if cm.Data["users.conf"] != string(want) {
		bad("ConfigMap %s: users.conf is not deploy/nats/users.conf as it is", cm.Name)
	}
	dir, err := os.MkdirTemp("", "nats-k8s-")
	if err != nil {
		return append(problems, err.Error())
	}
	defer os.RemoveAll(dir)
	for k, v := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			return append(problems, err.Error())
		}
	}
	c := sts.Spec.Template.Spec.Containers[0]
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			os.Setenv(e.Name, "pw-"+strings.ToLower(e.Name))
		}
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NATS_SERVER_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	}) {
		bad("StatefulSet nats: NATS_SERVER_NAME is not the pod's name")
	}
	os.Setenv("NATS_SERVER_NAME", "nats-0")
	if len(c.Args) != 2 || c.Args[0] != "-c" || filepath.Dir(c.Args[1]) != "/etc/nats" {
		return append(problems, fmt.Sprintf("StatefulSet nats: args %q do not load a config from /etc/nats", c.Args))
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, filepath.Base(c.Args[1])))
	if err != nil {
		return append(problems, fmt.Sprintf("ConfigMap %s: %s does not load: %v", cm.Name, filepath.Base(c.Args[1]), err))
	}
	if !opts.JetStream {
		bad("ConfigMap %s: no JetStream", cm.Name)
	}
	var users []string
	for _, u := range opts.Users {
		users = append(users, u.Username)
	}
	sort.Strings(users)
	names := slices.Clone(natsauth.Names)
	sort.Strings(names)
	if !slices.Equal(users, names) {
		bad("ConfigMap %s: users %v, want %v", cm.Name, users, names)
	}
	for i := range 3 {
		host := fmt.Sprintf("nats-%d.%s", i, sts.Spec.ServiceName)
		if !slices.ContainsFunc(opts.Routes, func(r *url.URL) bool {
			return r.Host == net.JoinHostPort(host, strconv.Itoa(opts.Cluster.Port))
		}) {
			bad("ConfigMap %s: no route to %s:%d", cm.Name, host, opts.Cluster.Port)
		}
	}
	if !hasPort(&sts.Spec.Template, strconv.Itoa(opts.Cluster.Port)) {
		bad("StatefulSet nats: the cluster port %d is not a container port", opts.Cluster.Port)
	}
	return problems
}

// containerEnv resolves a container's environment as the kubelet would
// (Secrets filled with values the service accepts, ConfigMaps as written,
// the pod's name, $(VAR) references), loads the service's configuration
// from it, and returns the environment, the variables the service read,
// and its configuration's problems.
func containerEnv(svc string, c corev1.Container, m *manifests) (map[string]string, map[string]bool, []string) {
	env := map[string]string{}
	ref := regexp.MustCompile(`\$\(([A-Za-z0-9_]+)\)`)
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom == nil:
			v = ref.ReplaceAllStringFunc(v, func(s string) string {
				if x, ok := env[ref.FindStringSubmatch(s)[1]]; ok {
					return x
				}
				return s
			})
		case e.ValueFrom.SecretKeyRef != nil:
			v = secretValue(e.ValueFrom.SecretKeyRef.Key)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			if cm := m.configMaps[e.ValueFrom.ConfigMapKeyRef.Name]; cm != nil {
				v = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			}
		case e.ValueFrom.FieldRef != nil:
			v = svc + "-5d8f7c9b4-x2k7q"
		}
		env[e.Name] = v
	}
	read := map[string]bool{}
	l := config.FromFunc(func(k string) (string, bool) {
		read[k] = true
		v, ok := env[k]
		return v, ok
	})
	loaders[svc](l)
	var problems []string
	if err := l.Err(); err != nil {
		problems = append(problems, fmt.Sprintf("the %s does not start: %v", svc, err))
	}
	return env, read, problems
}

// secretValue is what an operator would put in a Secret's key.
func secretValue(key string) string {
	switch {
	case key == "ENCRYPTION_KEY" || key == "STATE_KEY":
		b := make([]byte, 32)
		rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	case strings.HasSuffix(key, "_PREVIOUS") || key == "CROSS_WORKSPACE_API_KEY":
		return ""
	case key == "DATABASE_URL":
		return "postgres://nexus:pw@pg-primary:5432/nexus?sslmode=verify-full"
	case key == "REDIS_URL":
		return "rediss://:pw@s1:26379,s2:26379,s3:26379/0?master=mymaster"
	case strings.HasPrefix(key, "NATS_") && strings.HasSuffix(key, "_PASSWORD"):
		return "pw" + strings.ToLower(key[5:len(key)-9])
	}
	return "k8s-" + strings.ToLower(key) + "-0123456789"
}

// usedInOther: name is referenced as $(name) by another variable.
func usedInOther(env []corev1.EnvVar, name string) bool {
	return slices.ContainsFunc(env, func(e corev1.EnvVar) bool { return strings.Contains(e.Value, "$("+name+")") })
}

func selfSelect(name string, sel *metav1.LabelSelector, pod *corev1.PodTemplateSpec, bad func(string, ...any)) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() || !s.Matches(labels.Set(pod.Labels)) {
		bad("%s: selector does not match its pod template's labels", name)
	}
}

// hasPort: a container of pod has the port, by name or number.
func hasPort(pod *corev1.PodTemplateSpec, port string) bool {
	for _, c := range pod.Spec.Containers {
		if portNumber(c, port) != 0 {
			return true
		}
	}
	return false
}

func portNumber(c corev1.Container, port string) int32 {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return p.ContainerPort
		}
	}
	return 0
}

func stripComments(doc string) string {
	var b bytes.Buffer
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestK8sManifests: every manifest of deploy/k8s decodes strictly into its
// Kubernetes API type, and they agree with each other and with the services.
func TestK8sManifests(t *testing.T) {
	for _, p := range checkManifests("k8s", filepath.Join("nats", "users.conf")) {
		t.Error(p)
	}
}

// TestK8sCheckCatches: the check of TestK8sManifests fails on broken copies.
func TestK8sCheckCatches(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	orig := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		orig[filepath.Base(f)] = string(b)
	}
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"an unknown field", "vault.yaml", "  replicas: 2\n", "  replicas: 2\n  replica: 2\n", `unknown field "replica"`},
		{"a misspelt env var", "refresher.yaml", "name: EVENTS_REPLICAS,", "name: EVENT_REPLICAS,", "sets EVENT_REPLICAS, which the refresher does not read"},
		{"a missing secret key", "vault.yaml", "key: ENCRYPTION_KEY }", "key: ENCRYPTION_KEYS }", "Secret nexus-keys has no key ENCRYPTION_KEYS"},
		{"a selector that matches nothing", "admin.yaml", "spec:\n  selector:\n    app.kubernetes.io/name: admin", "spec:\n  selector:\n    app.kubernetes.io/name: admins", "Service admin: selector"},
		{"a probe on a port the container lacks", "handshake.yaml", "path: /readyz, port: internal", "path: /readyz, port: metrics", "readinessProbe on port metrics"},
		{"a probe on the wrong listener", "handshake.yaml", "path: /readyz, port: internal", "path: /readyz, port: public", "but the handshake serves /readyz"},
		{"one replica", "admin.yaml", "  replicas: 2\n", "  replicas: 1\n", "Deployment admin: want 2 replicas"},
		{"a secret with a value", "secrets.yaml", `STATE_KEY: ""`, `STATE_KEY: "c2VjcmV0"`, "STATE_KEY has a value"},
		{"a route missing", "nats.yaml", "        nats-route://nats-2.nats:6222\n", "", "no route to nats-2.nats:6222"},
		{"users.conf drifted", "nats.yaml", "{ user: billing,", "{ user: billing2,", "users.conf is not deploy/nats/users.conf"},
		{"a writable root filesystem", "refresher.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "without readOnlyRootFilesystem"},
		{"a file left out of kustomization", "kustomization.yaml", "  - refresher.yaml\n", "", "kustomization.yaml lists"},
		{"the templates applied by kustomization", "kustomization.yaml", "  - config.yaml\n", "  - config.yaml\n  - secrets.yaml\n", "kustomization.yaml lists"},
		{"the service does not start", "config.yaml", "PUBLIC_URL: https://connect.example.com", "PUBLIC_URL: ftp://connect.example.com", "the handshake does not start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for f, b := range orig {
				if f == tc.file {
					if !strings.Contains(b, tc.old) {
						t.Fatalf("%q is not in %s", tc.old, f)
					}
					b = strings.Replace(b, tc.old, tc.new, 1)
				}
				if err := os.WriteFile(filepath.Join(dir, f), []byte(b), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			problems := checkManifests(dir, filepath.Join("nats", "users.conf"))
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Fatalf("no problem says %q; got:\n%s", tc.want, strings.Join(problems, "\n"))
			}
		})
	}
}
