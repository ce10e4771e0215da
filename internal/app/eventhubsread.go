package app

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs"
)

// maxEventsRead bounds one read of an event hub partition.
const maxEventsRead = 1000

// readEventHub answers GET /outpost/eventhubs/{namespace}/{eventhub}/events:
// events of one partition (?partition=, default every partition) from a
// sequence number (?fromSequence=, default 0) for a consumer group
// (?consumerGroup=, default $Default), at most ?max= (default 100) per
// partition. It is the receive path of `outpost eventhubs read` until AMQP
// lands. Reading a namespace's events is as powerful as holding its keys, so
// it needs listKeys on the namespace's authorization rules.
func (a *App) readEventHub(w http.ResponseWriter, r *http.Request, p arm.Principal, authz rbacAuthorizer, namespace, eventhub string) error {
	ctx := r.Context()
	ns, err := a.findByName(r, "Microsoft.EventHub/namespaces", "", namespace)
	if err != nil {
		return err
	}
	if err := authz.decide(p, "Microsoft.EventHub/namespaces/authorizationRules/listKeys/action", ns.ID); err != nil {
		return err
	}
	eh, err := a.findByName(r, "Microsoft.EventHub/namespaces/eventhubs", ns.ID, eventhub)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	from, _ := strconv.ParseInt(q.Get("fromSequence"), 10, 64)
	limit, err := strconv.Atoi(q.Get("max"))
	if err != nil || limit <= 0 {
		limit = 100
	}
	limit = min(limit, maxEventsRead)
	partitions := []string{q.Get("partition")}
	if partitions[0] == "" {
		partitions = nil
		doc, err := arm.ParseDocument(eh.Body)
		if err != nil {
			return err
		}
		var props struct {
			PartitionCount int `json:"partitionCount"`
		}
		_ = doc.Decode("properties", &props)
		for i := range props.PartitionCount {
			partitions = append(partitions, strconv.Itoa(i))
		}
	}
	out := []map[string]any{}
	for _, part := range partitions {
		events, err := a.targets.eventHubs.Read(ctx, ns.Name, eh.Name, q.Get("consumerGroup"), part, from, limit)
		var ee *eventhubs.Error
		if errors.As(err, &ee) {
			return arm.Errorf(ee.Status, http.StatusText(ee.Status), "%s", ee.Detail)
		}
		if err != nil {
			return err
		}
		for _, e := range events {
			out = append(out, eventView(e))
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

// eventView is an event as `az eventhubs`-style tools print it: the body as
// text when it is UTF-8, base64 otherwise.
func eventView(e eventhubs.Event) map[string]any {
	v := map[string]any{
		"partitionId": e.PartitionID, "sequenceNumber": e.SequenceNumber, "offset": e.Offset,
		"enqueuedTime": e.EnqueuedTime.Format(time.RFC3339Nano), "properties": e.Properties,
	}
	if e.PartitionKey != "" {
		v["partitionKey"] = e.PartitionKey
	}
	if e.ContentType != "" {
		v["contentType"] = e.ContentType
	}
	if utf8.Valid(e.Body) {
		v["body"] = string(e.Body)
	} else {
		v["bodyBase64"] = base64.StdEncoding.EncodeToString(e.Body)
	}
	return v
}

// findByName finds a resource of a type by name (case-insensitive), within
// a parent when parentID is set; namespace names are unique in an
// installation, as their host names are.
func (a *App) findByName(r *http.Request, typ, parentID, name string) (store.Resource, error) {
	if parentID == "" {
		res, found, err := store.FindByName(r.Context(), a.store.Resources(), typ, name)
		if err != nil {
			return store.Resource{}, err
		}
		if found {
			return res, nil
		}
		return store.Resource{}, arm.Errorf(http.StatusNotFound, "ResourceNotFound", "No %s named '%s'.", typ, name)
	}
	list, err := a.store.Resources().List(r.Context(), store.ResourceFilter{Type: typ, ParentID: parentID})
	if err != nil {
		return store.Resource{}, err
	}
	for _, res := range list {
		if strings.EqualFold(res.Name, name) {
			return res, nil
		}
	}
	return store.Resource{}, arm.Errorf(http.StatusNotFound, "ResourceNotFound", "No %s named '%s'.", typ, name)
}
