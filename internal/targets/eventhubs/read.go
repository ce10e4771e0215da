package eventhubs

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
)

// MaxReadBatch caps the events one Read returns.
const MaxReadBatch = 1000

// Read returns up to max events of one partition, starting at sequence
// number fromSequence (0 is the first event ever sent; a number below the
// oldest retained event starts there). Consumer groups are independent
// readers: the group must exist, but the server keeps no position for it —
// the caller passes the next sequence number (last read + 1), as an
// Event Hubs client does with its checkpoint. Credentials are not checked
// here: this is the call the CLI and tests make in process.
func (h *Handler) Read(ctx context.Context, namespace, eventhub, consumerGroup, partition string, fromSequence int64, max int) ([]Event, error) {
	ns, err := h.dir.get(ctx, namespace)
	if err != nil {
		return nil, fmt.Errorf("eventhubs: load namespace %s: %w", namespace, err)
	}
	if ns == nil {
		return nil, errorf(http.StatusNotFound, "The namespace '%s' does not exist.", namespace)
	}
	eh, ok := ns.EventHub(eventhub)
	resource := "sb://" + ehresource.Host(ns.Name, h.cfg.DNSSuffix) + "/" + eventhub
	if !ok {
		return nil, errorf(http.StatusNotFound, "The messaging entity '%s' could not be found.", resource)
	}
	if consumerGroup == "" {
		consumerGroup = ehresource.DefaultConsumerGroup
	}
	if !eh.ConsumerGroups[lower(consumerGroup)] {
		return nil, errorf(http.StatusNotFound, "The messaging entity '%s/consumergroups/%s' could not be found. Create the consumer group first.", resource, consumerGroup)
	}
	switch eh.Status {
	case ehresource.StatusDisabled, ehresource.StatusReceiveDisabled:
		return nil, errorf(http.StatusForbidden, "The messaging entity '%s' is disabled for receiving (status %s).", resource, eh.Status)
	}
	p, err := strconv.Atoi(partition)
	if err != nil || p < 0 || p >= eh.PartitionCount {
		return nil, errorf(http.StatusBadRequest,
			"The specified partition '%s' is invalid for an EventHub partition sender or receiver. It should be between 0 and %d.", partition, eh.PartitionCount-1)
	}
	if fromSequence < 0 {
		fromSequence = 0
	}
	if max <= 0 || max > MaxReadBatch {
		max = MaxReadBatch
	}
	return h.cfg.Streams.read(ctx, ns.Name, eh.Name, p, fromSequence, max)
}

func lower(s string) string { return strings.ToLower(s) }
