package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
)

func newEventHubsCommand() *cobra.Command {
	eh := &cobra.Command{Use: "eventhubs", Short: "Event Hubs commands"}
	var (
		namespace, name, partition, consumerGroup string
		from                                      int64
		count                                     int
	)
	read := &cobra.Command{
		Use:   "read --namespace NS --name EVENTHUB",
		Short: "Print an event hub's events as JSON lines (every partition unless --partition)",
		Long: "Reads the events stored in an event hub's partitions from a sequence number, for a\n" +
			"consumer group, and prints one JSON object per event. Needs listKeys on the namespace.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if namespace == "" || name == "" {
				return errors.New("--namespace and --name are required")
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			q := url.Values{"fromSequence": {strconv.FormatInt(from, 10)}, "max": {strconv.Itoa(count)}}
			if partition != "" {
				q.Set("partition", partition)
			}
			if consumerGroup != "" {
				q.Set("consumerGroup", consumerGroup)
			}
			var out struct {
				Value []json.RawMessage `json:"value"`
			}
			path := "/outpost/eventhubs/" + url.PathEscape(namespace) + "/" + url.PathEscape(name) + "/events?" + q.Encode()
			if err := c.do(cmd.Context(), "GET", path, nil, &out); err != nil {
				return err
			}
			for _, e := range out.Value {
				fmt.Fprintln(cmd.OutOrStdout(), string(e))
			}
			return nil
		},
	}
	read.Flags().StringVar(&namespace, "namespace", "", "Event Hubs namespace")
	read.Flags().StringVarP(&name, "name", "n", "", "event hub")
	read.Flags().StringVarP(&partition, "partition", "p", "", "partition id (default: every partition)")
	read.Flags().StringVarP(&consumerGroup, "consumer-group", "c", "", "consumer group (default $Default)")
	read.Flags().Int64Var(&from, "from-sequence", 0, "first sequence number to read")
	read.Flags().IntVar(&count, "count", 100, "at most this many events per partition (up to 1000)")
	eh.AddCommand(read)
	addEventHubsManagement(eh)
	return eh
}
