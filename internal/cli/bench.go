package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

func newBenchCommand() *cobra.Command {
	bench := &cobra.Command{Use: "bench", Short: "Load tools that measure a running Outpost (never run by tests)"}
	var (
		duration    time.Duration
		concurrency int
		resource    string
	)
	tokens := &cobra.Command{
		Use:   "tokens",
		Short: "Client-credentials grants per second against the token endpoint, over HTTPS",
		Long: "Runs the OAuth2 client-credentials grant as the operator (or AZURE_CLIENT_ID) against\n" +
			"the running node for --duration with --concurrency workers, each on its own\n" +
			"keep-alive connection, and prints grants/s and latency percentiles. Start the node\n" +
			"with --token-reuse 0 to measure minting rather than reuse.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			return benchTokens(cmd.Context(), cmd.OutOrStdout(), c, resource, duration, concurrency)
		},
	}
	tokens.Flags().DurationVar(&duration, "duration", 10*time.Second, "how long to run")
	tokens.Flags().IntVar(&concurrency, "concurrency", 2*runtime.NumCPU(), "concurrent workers")
	tokens.Flags().StringVar(&resource, "resource", "https://storage.azure.com/", "resource the tokens are for")
	bench.AddCommand(tokens, newBenchMQTTCommand(), newBenchSoakCommand())
	bench.AddCommand(newBenchScaleCommand(), newBenchScaleClientsCommand())
	return bench
}

func benchTokens(ctx context.Context, w io.Writer, c *apiClient, resource string, d time.Duration, workers int) error {
	if workers < 1 {
		return fmt.Errorf("--concurrency must be at least 1")
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.clientID},
		"client_secret": {c.secret}, "scope": {strings.TrimSuffix(resource, "/") + "/.default"}}.Encode()
	endpoint := c.endpoint + "/" + c.tenant + "/oauth2/v2.0/token"
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		ok, failed atomic.Int64
		mu         sync.Mutex
		latencies  []time.Duration
		wg         sync.WaitGroup
		firstErr   atomic.Value
	)
	start := time.Now()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for ctx.Err() == nil {
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := c.http.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
					continue
				}
				ok.Add(1)
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))]
	}
	fmt.Fprintf(w, "grants: %d ok, %d failed in %s with %d workers (%d CPUs)\n", ok.Load(), failed.Load(), elapsed.Round(time.Millisecond), workers, runtime.NumCPU())
	fmt.Fprintf(w, "rate: %.0f grants/s\n", float64(ok.Load())/elapsed.Seconds())
	fmt.Fprintf(w, "latency: p50 %s  p90 %s  p99 %s\n", pct(0.5).Round(time.Microsecond), pct(0.9).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(w, "first error: %v\n", e)
	}
	return nil
}
