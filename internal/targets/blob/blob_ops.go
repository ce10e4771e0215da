package blob

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/outpost-iot/outpost/internal/targets/access"
)

// Limits, as Azure sets them (service version 2019-12-12 and later).
const (
	MaxPutBlobBytes     int64 = 5000 << 20
	MaxBlockBytes       int64 = 4000 << 20
	MaxAppendBlockBytes int64 = 100 << 20
	MaxBlocks                 = 50000
	maxBlockListBytes   int64 = 8 << 20
	maxBlockIDBytes           = 64
)

func errTooLargeFor(limit int64) *Error {
	return errorf(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge",
		"The request body is too large and exceeds the maximum permissible limit (%d bytes). Upload larger blobs in blocks (Put Block + Put Block List).", limit)
}

// uploadLimit checks Content-Length against a limit before reading.
func uploadLimit(r *http.Request, limit int64) error {
	if r.ContentLength > limit {
		return errTooLargeFor(limit)
	}
	return nil
}

// spoolBody streams the request body to a temporary file and checks a
// Content-MD5 the client sent.
//
// The MD5 is computed when alwaysMD5 (Put Blob stores it as the blob's
// Content-MD5) or when the request sends Content-MD5 to check; otherwise
// (Put Block since version 2019-02-02) sum is nil.
func (h *Handler) spoolBody(rq *request, limit int64, alwaysMD5 bool) (string, int64, []byte, error) {
	withMD5 := alwaysMD5 || rq.r.Header.Get("Content-MD5") != ""
	path, n, sum, err := h.cfg.Blobs.spool(rq.account.Name, rq.container, rq.r.Body, limit, withMD5)
	if errors.Is(err, errTooLarge) {
		return "", 0, nil, errTooLargeFor(limit)
	}
	if err != nil {
		return "", 0, nil, fmt.Errorf("blob: receive body: %w", err)
	}
	if want := rq.r.Header.Get("Content-MD5"); want != "" {
		if b, derr := base64.StdEncoding.DecodeString(want); derr != nil || !bytes.Equal(b, sum) {
			_ = os.Remove(path)
			return "", 0, nil, errorf(http.StatusBadRequest, "Md5Mismatch",
				"The MD5 value specified in the request did not match with the MD5 value calculated by the server (Content-MD5 %s, computed %s).", want, base64.StdEncoding.EncodeToString(sum))
		}
	}
	return path, n, sum, nil
}

func blobHeadersFrom(r *http.Request, fallbackContentType bool) (blobHeaders, error) {
	g := r.Header.Get
	bh := blobHeaders{
		ContentType: g("x-ms-blob-content-type"), ContentEncoding: g("x-ms-blob-content-encoding"),
		ContentLanguage: g("x-ms-blob-content-language"), ContentDisposition: g("x-ms-blob-content-disposition"),
		CacheControl: g("x-ms-blob-cache-control"),
	}
	if fallbackContentType {
		if bh.ContentType == "" {
			bh.ContentType = g("Content-Type")
		}
		if bh.ContentEncoding == "" {
			bh.ContentEncoding = g("Content-Encoding")
		}
		if bh.ContentLanguage == "" {
			bh.ContentLanguage = g("Content-Language")
		}
	}
	if bh.ContentType == "" {
		bh.ContentType = "application/octet-stream"
	}
	if v := g("x-ms-blob-content-md5"); v != "" {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) != 16 {
			return blobHeaders{}, errInvalidHeader("x-ms-blob-content-md5", v, "send the base64 of a 16-byte MD5")
		}
		bh.ContentMD5 = b
	}
	return bh, nil
}

// checkConditions applies If-Match / If-None-Match to a write (old is nil
// when the blob does not exist).
func checkConditions(r *http.Request, old *blobMeta) error {
	if im := r.Header.Get("If-Match"); im != "" {
		if old == nil || (im != "*" && !etagMatches(im, old.ETag)) {
			return errorf(http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met (If-Match %s).", im)
		}
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && old != nil {
		if inm == "*" {
			return errorf(http.StatusConflict, "BlobAlreadyExists", "The specified blob already exists.")
		}
		if etagMatches(inm, old.ETag) {
			return errorf(http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met (If-None-Match %s).", inm)
		}
	}
	return nil
}

func writeBlobWritten(rq *request, m *blobMeta, md5 []byte, status int) {
	hd := rq.w.Header()
	hd.Set("ETag", m.ETag)
	hd.Set("Last-Modified", httpTime(m.Modified))
	if md5 != nil {
		hd.Set("Content-MD5", base64.StdEncoding.EncodeToString(md5))
	}
	hd.Set("x-ms-request-server-encrypted", "true")
	hd.Set("Content-Length", "0")
	rq.w.WriteHeader(status)
}

func (h *Handler) newMeta(rq *request, typ string, bh blobHeaders) *blobMeta {
	m := &blobMeta{Name: rq.blob, Type: typ, Created: rq.now, Modified: rq.now, ETag: h.cfg.Blobs.newETag(rq.now), Metadata: metadataFrom(rq.r.Header)}
	m.setHeaders(bh)
	return m
}

func (h *Handler) putBlob(ctx context.Context, rq *request, _ *access.Caller) error {
	typ := rq.r.Header.Get("x-ms-blob-type")
	switch typ {
	case "BlockBlob", "AppendBlob":
	case "PageBlob":
		return errInvalidHeader("x-ms-blob-type", typ, "page blobs are not supported by Outpost; use BlockBlob or AppendBlob")
	case "":
		return errorf(http.StatusBadRequest, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified: x-ms-blob-type (BlockBlob or AppendBlob).")
	default:
		return errInvalidHeader("x-ms-blob-type", typ, "use BlockBlob or AppendBlob")
	}
	if err := uploadLimit(rq.r, MaxPutBlobBytes); err != nil {
		return err
	}
	if typ == "AppendBlob" && rq.r.ContentLength > 0 {
		return errorf(http.StatusBadRequest, "InvalidHeaderValue", "Creating an append blob takes no content (Content-Length 0); add content with Append Block.")
	}
	if _, err := h.container(ctx, rq); err != nil {
		return err
	}
	bh, err := blobHeadersFrom(rq.r, true)
	if err != nil {
		return err
	}
	spooled, n, sum, err := h.spoolBody(rq, MaxPutBlobBytes, true)
	if err != nil {
		return err
	}
	m := h.newMeta(rq, typ, bh)
	m.Size = n
	if typ == "BlockBlob" && m.ContentMD5 == nil {
		m.ContentMD5 = sum
	}
	err = h.cfg.Blobs.putBlob(rq.account.Name, rq.container, m, spooled, func(old *blobMeta) error { return checkConditions(rq.r, old) })
	if err != nil {
		_ = os.Remove(spooled)
		return err
	}
	if typ == "AppendBlob" {
		sum = nil
	}
	writeBlobWritten(rq, m, sum, http.StatusCreated)
	return nil
}

// blockID validates and decodes a block id.
func blockID(s string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) == 0 || len(raw) > maxBlockIDBytes {
		return nil, errorf(http.StatusBadRequest, "InvalidBlockId",
			"The specified block ID is invalid: '%s'. A block id is base64 of at most 64 bytes, the same length for every block of a blob.", truncate(s, 100))
	}
	return raw, nil
}

func (h *Handler) putBlock(ctx context.Context, rq *request, _ *access.Caller) error {
	id, err := blockID(rq.r.URL.Query().Get("blockid"))
	if err != nil {
		return err
	}
	if err := uploadLimit(rq.r, MaxBlockBytes); err != nil {
		return err
	}
	if _, err := h.container(ctx, rq); err != nil {
		return err
	}
	spooled, _, sum, err := h.spoolBody(rq, MaxBlockBytes, false)
	if err != nil {
		return err
	}
	if err := h.cfg.Blobs.putBlock(rq.account.Name, rq.container, rq.blob, id, spooled); err != nil {
		_ = os.Remove(spooled)
		return err
	}
	hd := rq.w.Header()
	if sum != nil {
		// Since 2019-02-02 Put Block returns Content-MD5 only when the
		// request sent one.
		hd.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum))
	}
	hd.Set("x-ms-request-server-encrypted", "true")
	hd.Set("Content-Length", "0")
	rq.w.WriteHeader(http.StatusCreated)
	return nil
}

// parseBlockList reads a Put Block List body.
func parseBlockList(body io.Reader) ([]listEntry, error) {
	invalid := func(format string, args ...any) error {
		return errorf(http.StatusBadRequest, "InvalidXmlDocument", "XML specified is not syntactically valid: "+format, args...)
	}
	dec := xml.NewDecoder(io.LimitReader(body, maxBlockListBytes+1))
	var out []listEntry
	depth, root := 0, false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, invalid("%v. Send <BlockList><Latest>base64 id</Latest>…</BlockList>.", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1 && t.Name.Local == "BlockList":
				root = true
			case depth == 1:
				return nil, invalid("the root element is <%s>, not <BlockList>.", t.Name.Local)
			case depth == 2 && (t.Name.Local == "Latest" || t.Name.Local == "Committed" || t.Name.Local == "Uncommitted"):
				var s string
				if err := dec.DecodeElement(&s, &t); err != nil {
					return nil, invalid("%v", err)
				}
				depth--
				s = strings.TrimSpace(s)
				raw, err := base64.StdEncoding.DecodeString(s)
				if err != nil || len(raw) == 0 || len(raw) > maxBlockIDBytes {
					return nil, errorf(http.StatusBadRequest, "InvalidBlockList", "The specified block list is invalid: '%s' is not a base64 block id of at most 64 bytes.", truncate(s, 100))
				}
				if len(out) > 0 && len(out[0].raw) != len(raw) {
					return nil, errorf(http.StatusBadRequest, "InvalidBlockList", "The specified block list is invalid: block ids of one blob must all have the same length.")
				}
				out = append(out, listEntry{Kind: t.Name.Local, ID: s, raw: raw})
				if len(out) > MaxBlocks {
					return nil, errorf(http.StatusBadRequest, "BlockListTooLong", "The block list may not contain more than %d blocks.", MaxBlocks)
				}
			default:
				return nil, invalid("unexpected element <%s>; a block list holds <Latest>, <Committed> and <Uncommitted>.", t.Name.Local)
			}
		case xml.EndElement:
			depth--
		}
	}
	if !root {
		return nil, invalid("the body is empty or has no <BlockList> element.")
	}
	return out, nil
}

func (h *Handler) putBlockList(ctx context.Context, rq *request, _ *access.Caller) error {
	if rq.r.ContentLength > maxBlockListBytes {
		return errTooLargeFor(maxBlockListBytes)
	}
	if _, err := h.container(ctx, rq); err != nil {
		return err
	}
	list, err := parseBlockList(rq.r.Body)
	if err != nil {
		return err
	}
	bh, err := blobHeadersFrom(rq.r, false)
	if err != nil {
		return err
	}
	m := h.newMeta(rq, "BlockBlob", bh)
	err = h.cfg.Blobs.putBlockList(rq.account.Name, rq.container, m, list, func(old *blobMeta) error {
		if old != nil && old.Type != "BlockBlob" {
			return errorf(http.StatusConflict, "InvalidBlobType", "The blob type is invalid for this operation: '%s' is an %s.", rq.blob, old.Type)
		}
		return checkConditions(rq.r, old)
	})
	if err != nil {
		return err
	}
	writeBlobWritten(rq, m, nil, http.StatusCreated)
	return nil
}

func (h *Handler) appendBlock(ctx context.Context, rq *request, _ *access.Caller) error {
	if err := uploadLimit(rq.r, MaxAppendBlockBytes); err != nil {
		return err
	}
	if _, err := h.container(ctx, rq); err != nil {
		return err
	}
	spooled, n, sum, err := h.spoolBody(rq, MaxAppendBlockBytes, true)
	if err != nil {
		return err
	}
	pos := rq.r.Header.Get("x-ms-blob-condition-appendpos")
	maxSize := rq.r.Header.Get("x-ms-blob-condition-maxsize")
	m, offset, err := h.cfg.Blobs.appendBlock(rq.account.Name, rq.container, rq.blob, spooled, n, rq.now, func(m *blobMeta) error {
		if m.Type != "AppendBlob" {
			return errorf(http.StatusConflict, "InvalidBlobType", "The blob type is invalid for this operation: '%s' is a %s; Append Block needs an append blob.", rq.blob, m.Type)
		}
		if m.AppendCount >= MaxBlocks {
			return errorf(http.StatusConflict, "BlockCountExceedsLimit", "The committed block count cannot exceed the maximum limit of %d blocks.", MaxBlocks)
		}
		if pos != "" && pos != strconv.FormatInt(m.Size, 10) {
			return errorf(http.StatusPreconditionFailed, "AppendPositionConditionNotMet", "The append position condition specified was not met (x-ms-blob-condition-appendpos %s, blob size %d).", pos, m.Size)
		}
		if maxSize != "" {
			if ms, err := strconv.ParseInt(maxSize, 10, 64); err == nil && m.Size+n > ms {
				return errorf(http.StatusPreconditionFailed, "MaxBlobSizeConditionNotMet", "The max blob size condition specified was not met.")
			}
		}
		return checkConditions(rq.r, m)
	})
	if err != nil {
		return errNotFoundAs(err, errBlobNotFound())
	}
	hd := rq.w.Header()
	hd.Set("x-ms-blob-append-offset", strconv.FormatInt(offset, 10))
	hd.Set("x-ms-blob-committed-block-count", strconv.Itoa(m.AppendCount))
	writeBlobWritten(rq, m, sum, http.StatusCreated)
	return nil
}

// downloadBuffer is the read size of a download.
const downloadBuffer = 128 << 10

// writerOnly hides a writer's ReadFrom, so io.CopyBuffer uses the buffer
// it is given.
type writerOnly struct{ io.Writer }

// blobPropertyHeaders sets what Get Blob and Get Blob Properties share.
func blobPropertyHeaders(hd http.Header, m *blobMeta, sas *sasToken) {
	hd.Set("ETag", m.ETag)
	hd.Set("Last-Modified", httpTime(m.Modified))
	hd.Set("x-ms-creation-time", httpTime(m.Created))
	hd.Set("x-ms-blob-type", m.Type)
	hd.Set("x-ms-lease-status", "unlocked")
	hd.Set("x-ms-lease-state", "available")
	hd.Set("x-ms-server-encrypted", "true")
	hd.Set("Accept-Ranges", "bytes")
	set := func(k, v, override string) {
		if sas != nil && sas.get(override) != "" {
			v = sas.get(override)
		}
		if v != "" {
			hd.Set(k, v)
		}
	}
	set("Content-Type", m.ContentType, "rsct")
	set("Content-Encoding", m.ContentEncoding, "rsce")
	set("Content-Language", m.ContentLanguage, "rscl")
	set("Content-Disposition", m.ContentDisposition, "rscd")
	set("Cache-Control", m.CacheControl, "rscc")
	if m.Type == "AppendBlob" {
		hd.Set("x-ms-blob-committed-block-count", strconv.Itoa(m.AppendCount))
	}
	setMetadataHeaders(hd, m.Metadata)
}

func checkReadConditions(r *http.Request, m *blobMeta) (notModified bool, err error) {
	if im := r.Header.Get("If-Match"); im != "" && im != "*" && !etagMatches(im, m.ETag) {
		return false, errorf(http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met (If-Match %s).", im)
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == "*" || etagMatches(inm, m.ETag)) {
		return true, nil
	}
	return false, nil
}

// parseRange reads x-ms-range (preferred) or Range: "bytes=a-b" or "bytes=a-".
func parseRange(r *http.Request, size int64) (start, end int64, ok bool, err error) {
	v := r.Header.Get("x-ms-range")
	name := "x-ms-range"
	if v == "" {
		v, name = r.Header.Get("Range"), "Range"
	}
	if v == "" {
		return 0, 0, false, nil
	}
	spec, found := strings.CutPrefix(v, "bytes=")
	a, b, dash := strings.Cut(spec, "-")
	s, serr := strconv.ParseInt(a, 10, 64)
	if !found || !dash || serr != nil || s < 0 {
		return 0, 0, false, errInvalidHeader(name, v, "use bytes=start-end or bytes=start-")
	}
	e := size - 1
	if b != "" {
		if e, err = strconv.ParseInt(b, 10, 64); err != nil || e < s {
			return 0, 0, false, errInvalidHeader(name, v, "use bytes=start-end with end >= start")
		}
	}
	if s >= size {
		return 0, 0, false, errorf(http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The range specified is invalid for the current size of the resource (%d bytes).", size)
	}
	if e >= size {
		e = size - 1
	}
	return s, e, true, nil
}

func (h *Handler) getBlob(ctx context.Context, rq *request, _ *access.Caller) error {
	if _, err := h.container(ctx, rq); err != nil {
		return err
	}
	// What is read is decided with the properties, under the blob's lock,
	// so that only the content files of those bytes are opened.
	var (
		notModified, ranged bool
		start, length       int64
		rangeErr            error
	)
	m, f, err := h.cfg.Blobs.open(rq.account.Name, rq.container, rq.blob, func(m *blobMeta) (int64, int64, error) {
		var err error
		if notModified, err = checkReadConditions(rq.r, m); err != nil || notModified {
			return 0, 0, err
		}
		start, length = 0, m.Size
		if m.Size > 0 || rq.r.Header.Get("x-ms-range") != "" || rq.r.Header.Get("Range") != "" {
			var s, e int64
			if s, e, ranged, rangeErr = parseRange(rq.r, m.Size); ranged {
				start, length = s, e-s+1
			}
		}
		// A bad range is answered below, with the properties headers set.
		if rangeErr != nil || rq.r.Method == http.MethodHead {
			return 0, 0, nil
		}
		return start, length, nil
	})
	if err != nil {
		return errNotFoundAs(err, errBlobNotFound())
	}
	defer f.Close()
	hd := rq.w.Header()
	blobPropertyHeaders(hd, m, rq.sas)
	if notModified {
		rq.w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if rangeErr != nil {
		return rangeErr
	}
	status := http.StatusOK
	if ranged {
		status = http.StatusPartialContent
		hd.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, m.Size))
	}
	if status == http.StatusOK && m.ContentMD5 != nil {
		hd.Set("Content-MD5", base64.StdEncoding.EncodeToString(m.ContentMD5))
	}
	if status == http.StatusPartialContent && m.ContentMD5 != nil {
		hd.Set("x-ms-blob-content-md5", base64.StdEncoding.EncodeToString(m.ContentMD5))
	}
	hd.Set("Content-Length", strconv.FormatInt(length, 10))
	if rq.r.Method == http.MethodHead {
		rq.w.WriteHeader(status)
		return nil
	}
	rq.w.WriteHeader(status)
	// Copy in large reads: the response writer's own ReadFrom would read
	// the file 32 KiB at a time, a syscall per two TLS records.
	buf := h.buffers.Get().(*[downloadBuffer]byte)
	_, err = io.CopyBuffer(writerOnly{rq.w}, io.NewSectionReader(f, start, length), buf[:])
	h.buffers.Put(buf)
	if err != nil {
		h.cfg.Log.Debug("blob download interrupted", "blob", rq.blob, "err", err)
	}
	return nil
}

func (h *Handler) getBlobMetadata(ctx context.Context, rq *request, _ *access.Caller) error {
	if _, err := h.container(ctx, rq); err != nil {
		return err
	}
	m, err := h.cfg.Blobs.stat(rq.account.Name, rq.container, rq.blob)
	if err != nil {
		return errNotFoundAs(err, errBlobNotFound())
	}
	hd := rq.w.Header()
	hd.Set("ETag", m.ETag)
	hd.Set("Last-Modified", httpTime(m.Modified))
	setMetadataHeaders(hd, m.Metadata)
	hd.Set("Content-Length", "0")
	rq.w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) setBlobMetadata(ctx context.Context, rq *request, _ *access.Caller) error {
	return h.changeBlob(ctx, rq, func(m *blobMeta) error {
		m.Metadata = metadataFrom(rq.r.Header)
		return nil
	})
}

func (h *Handler) setBlobProperties(ctx context.Context, rq *request, _ *access.Caller) error {
	bh, err := blobHeadersFrom(rq.r, false)
	if err != nil {
		return err
	}
	return h.changeBlob(ctx, rq, func(m *blobMeta) error {
		// Set Blob Properties replaces all the HTTP headers at once.
		m.ContentMD5 = nil
		m.setHeaders(bh)
		return nil
	})
}

func (h *Handler) changeBlob(ctx context.Context, rq *request, change func(m *blobMeta) error) error {
	if _, err := h.container(ctx, rq); err != nil {
		return err
	}
	m, err := h.cfg.Blobs.update(rq.account.Name, rq.container, rq.blob, func(m *blobMeta) error {
		if err := checkConditions(rq.r, m); err != nil {
			return err
		}
		if err := change(m); err != nil {
			return err
		}
		m.Modified, m.ETag = rq.now, h.cfg.Blobs.newETag(rq.now)
		return nil
	})
	if err != nil {
		return errNotFoundAs(err, errBlobNotFound())
	}
	writeBlobWritten(rq, m, nil, http.StatusOK)
	return nil
}

func (h *Handler) deleteBlob(ctx context.Context, rq *request, _ *access.Caller) error {
	if _, err := h.container(ctx, rq); err != nil {
		return err
	}
	err := h.cfg.Blobs.remove(rq.account.Name, rq.container, rq.blob, func(m *blobMeta) error { return checkConditions(rq.r, m) })
	if err != nil {
		return errNotFoundAs(err, errBlobNotFound())
	}
	rq.w.Header().Set("x-ms-delete-type-permanent", "true")
	rq.w.WriteHeader(http.StatusAccepted)
	return nil
}

type blockXML struct {
	Name string `xml:"Name"`
	Size int64  `xml:"Size"`
}

func (h *Handler) getBlockList(ctx context.Context, rq *request, _ *access.Caller) error {
	if _, err := h.container(ctx, rq); err != nil {
		return err
	}
	which := strings.ToLower(rq.r.URL.Query().Get("blocklisttype"))
	switch which {
	case "":
		which = "committed"
	case "committed", "uncommitted", "all":
	default:
		return errInvalidQuery("blocklisttype", which, "use committed, uncommitted or all")
	}
	m, unc, err := h.cfg.Blobs.blocks(rq.account.Name, rq.container, rq.blob)
	if err != nil {
		return err
	}
	if m == nil && len(unc) == 0 {
		return errBlobNotFound()
	}
	out := struct {
		XMLName     xml.Name   `xml:"BlockList"`
		Committed   []blockXML `xml:"CommittedBlocks>Block"`
		Uncommitted []blockXML `xml:"UncommittedBlocks>Block"`
	}{Committed: []blockXML{}, Uncommitted: []blockXML{}}
	if m != nil && which != "uncommitted" {
		for _, b := range m.Blocks {
			out.Committed = append(out.Committed, blockXML{Name: b.ID, Size: b.Size})
		}
	}
	if which != "committed" {
		for _, b := range unc {
			out.Uncommitted = append(out.Uncommitted, blockXML{Name: b.ID, Size: b.Size})
		}
	}
	hd := rq.w.Header()
	if m != nil {
		hd.Set("ETag", m.ETag)
		hd.Set("Last-Modified", httpTime(m.Modified))
		hd.Set("x-ms-blob-content-length", strconv.FormatInt(m.Size, 10))
	}
	return writeXML(rq.w, http.StatusOK, out)
}
