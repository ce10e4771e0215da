package portal

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Cookie names. The __Host- prefix makes browsers refuse the cookie unless
// it is Secure, has Path=/ and no Domain, so no sibling host (a hub's
// {name}.{suffix}) can plant or widen it.
const (
	sessionCookie = "__Host-outpost-portal"
	signInCookie  = "__Host-outpost-signin"
	csrfField     = "csrf"
)

// session is one signed-in principal.
type session struct {
	id       string
	csrf     string
	name     string // what the header shows: the client id or user name
	objectID string
	armToken string
	expires  time.Time
	// host and remote are the request's, for the in-process API calls
	// (set per request, not stored).
	host   string
	remote string
	notice string // shown once on the next page (after a redirect)
}

// sessions is the portal's session table: in memory, per node.
type sessions struct {
	mu  sync.Mutex
	all map[string]*session
	now func() time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{all: map[string]*session{}, now: now}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("portal: crypto/rand failed: " + err.Error()) // the platform's CSPRNG never fails on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create stores a new session and returns it.
func (s *sessions) create(name, objectID, armToken string, expires time.Time) *session {
	se := &session{id: randomToken(), csrf: randomToken(), name: name, objectID: objectID, armToken: armToken, expires: expires}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, old := range s.all { // drop expired sessions as new ones come
		if now.After(old.expires) {
			delete(s.all, id)
		}
	}
	s.all[se.id] = se
	return se
}

// get returns a copy of the request's live session, or nil.
func (s *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.all[c.Value]
	if !ok {
		return nil
	}
	if s.now().After(se.expires) {
		delete(s.all, c.Value)
		return nil
	}
	cp := *se
	cp.host, cp.remote = r.Host, r.RemoteAddr
	return &cp
}

// takeNotice returns and clears the session's one-time notice.
func (s *sessions) takeNotice(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.all[id]
	if !ok {
		return ""
	}
	n := se.notice
	se.notice = ""
	return n
}

func (s *sessions) setNotice(id, notice string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if se, ok := s.all[id]; ok {
		se.notice = notice
	}
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.all, id)
}

// validCSRF compares the form's token with the expected one in constant time.
func validCSRF(r *http.Request, want string) bool {
	got := r.PostFormValue(csrfField)
	return want != "" && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// Name is what the page header shows for the signed-in principal.
func (s *session) Name() string { return s.name }
