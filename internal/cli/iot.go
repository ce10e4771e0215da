package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
				return responseError(resp)
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
	hub.AddCommand(newJobCommand())
	hub.AddCommand(newHubCommands()...)
	hub.AddCommand(newDeviceIdentityCommand())

	device := &cobra.Command{Use: "device", Short: "Device-facing commands"}
	c2dCmd := &cobra.Command{Use: "c2d-message", Short: "Cloud-to-device messages"}
	var (
		hubName, deviceID, data, props, messageID, ack string
		ttl                                            int
	)
	send := &cobra.Command{
		Use:   "send --hub-name NAME --device-id ID --data TEXT",
		Short: "Queue a cloud-to-device message for a device",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hubName == "" || deviceID == "" {
				return errors.New("--hub-name (-n) and --device-id (-d) are required")
			}
			app := map[string]string{}
			if props != "" {
				for _, kv := range strings.Split(props, ";") {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return fmt.Errorf("--props: %q is not key=value; separate pairs with ';'", kv)
					}
					app[k] = v
				}
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			return c.do(cmd.Context(), "POST", "/outpost/iothubs/"+url.PathEscape(hubName)+"/devices/"+url.PathEscape(deviceID)+"/messages",
				map[string]any{"data": data, "properties": app, "messageId": messageID, "ack": ack, "ttlSeconds": ttl}, nil)
		},
	}
	send.Flags().StringVarP(&hubName, "hub-name", "n", "", "hub name")
	send.Flags().StringVarP(&deviceID, "device-id", "d", "", "device id")
	send.Flags().StringVar(&data, "data", "Ping from Outpost", "message body")
	send.Flags().StringVar(&props, "props", "", "application properties: key=value;key2=value2")
	send.Flags().StringVar(&messageID, "message-id", "", "message id")
	send.Flags().StringVar(&ack, "ack", "", "feedback requested: positive, negative or full")
	send.Flags().IntVar(&ttl, "expiry", 0, "time to live in seconds (default: the hub's)")
	c2dCmd.AddCommand(send)
	device.AddCommand(c2dCmd)
	device.AddCommand(newSendD2CCommand(), newUploadFileCommand())
	iot.AddCommand(device)
	return iot
}
