package systemtest

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMetricSample(t *testing.T) {
	page := "# HELP x a counter\n# TYPE x counter\nx{result=\"hit\"} 10\nx{result=\"hit2\"} 7\nx{result=\"miss\"} 2.5e+06\nbad{a=\"1\"} NaNa\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(page))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		sample string
		want   float64
		found  bool
		err    bool
	}{
		{`x{result="hit"}`, 10, true, false},
		{`x{result="miss"}`, 2.5e6, true, false},
		{`x{result="none"}`, 0, false, false},
		{`bad{a="1"}`, 0, false, true},
	} {
		v, found, err := MetricSample(srv.URL+"/metrics", tc.sample)
		if v != tc.want || found != tc.found || (err != nil) != tc.err {
			t.Errorf("%s: %v, %v, %v; want %v, %v, error %v", tc.sample, v, found, err, tc.want, tc.found, tc.err)
		}
	}
	if _, _, err := MetricSample(srv.URL+"/nothing", "x"); err == nil {
		t.Error("a page that answered 404 was read")
	}
}
