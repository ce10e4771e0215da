package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func newIoTCommand() *cobra.Command {
	iot := &cobra.Command{Use: "iot", Short: "IoT hub commands (az iot shaped)"}
	hub := &cobra.Command{Use: "hub", Short: "IoT hubs"}
	iot.AddCommand(hub)
	var (
		name      string
		fromStart bool
		timeout   time.Duration
		count     int
	)
	monitor := &cobra.Command{
		Use:   "monitor-events --hub-name NAME",
		Short: "Print a hub's device-to-cloud messages as they arrive (the built-in events endpoint)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--hub-name (-n) is required")
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			if err := c.authenticate(ctx); err != nil {
				return err
			}
			u := c.endpoint + "/outpost/iothubs/" + url.PathEscape(name) + "/events?fromStart=" + strconv.FormatBool(fromStart)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			req.Header.Set("Authorization", "Bearer "+c.token)
			stream := *c.http
			stream.Timeout = 0
			resp, err := stream.Do(req)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("can't reach Outpost at %s: %w", c.endpoint, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return c.errorFrom(resp)
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for n := 0; sc.Scan(); n++ {
				fmt.Fprintln(cmd.OutOrStdout(), sc.Text())
				if count > 0 && n+1 >= count {
					return nil
				}
			}
			if ctx.Err() != nil {
				return nil // --timeout ended the watch
			}
			return sc.Err()
		},
	}
	monitor.Flags().StringVarP(&name, "hub-name", "n", "", "hub name")
	monitor.Flags().BoolVar(&fromStart, "from-start", false, "print the retained messages first, not only new ones")
	monitor.Flags().DurationVarP(&timeout, "timeout", "t", 0, "stop after this long (0: until interrupted)")
	monitor.Flags().IntVar(&count, "count", 0, "stop after this many messages (0: no limit)")
	hub.AddCommand(monitor)
	return iot
}
