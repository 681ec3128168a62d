package systemtest

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// MetricSample reads one sample of the Prometheus text page at url: the
// value of the line that starts with sample (a name with its labels, as the
// page prints them, e.g. `nexus_vault_token_cache_total{result="miss"}`).
// found is false when the page has no such line.
func MetricSample(url, sample string) (value float64, found bool, err error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			value, err = strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, false, fmt.Errorf("%s: sample %s: %w", url, sample, err)
			}
			return value, true, nil
		}
	}
	return 0, false, sc.Err()
}
