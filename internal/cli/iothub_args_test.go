package cli

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// parseAz parses args as cobra does, then finishes them as az's argparse.
func parseAz(t *testing.T, cmd *cobra.Command, a *azArgs, args ...string) error {
	t.Helper()
	if err := cmd.ParseFlags(args); err != nil {
		return err
	}
	return a.finish(cmd, cmd.Flags().Args())
}

func TestAzArgs(t *testing.T) {
	type parsed struct {
		fn, dla          *bool
		users, tags      []string
		fnd              int
		name             string
		usersGiven, help bool
	}
	build := func() (*cobra.Command, *azArgs, func() parsed) {
		cmd := &cobra.Command{Use: "x"}
		a := newAZArgs(cmd)
		var s hubSettings
		s.flags(cmd, a, false)
		users := a.listFlag(cmd, "mi-user-assigned", "", "`IDs`", "user")
		var name string
		cmd.Flags().StringVarP(&name, "name", "n", "", "")
		return cmd, a, func() parsed {
			return parsed{fn: s.fileUploadNotifications.ptr(), dla: s.disableLocalAuth.ptr(), users: users.values(), tags: s.tags.values(),
				fnd: s.fnMaxDelivery, name: name, usersGiven: users.given}
		}
	}
	yes, no := true, false
	for _, c := range []struct {
		args []string
		want parsed
		err  string
	}{
		{args: []string{"-n", "hub", "--fn", "true", "--fnd", "5"}, want: parsed{fn: &yes, fnd: 5, name: "hub"}},
		{args: []string{"--fn", "--fnd", "5", "-n", "hub"}, want: parsed{fn: &yes, fnd: 5, name: "hub"}},
		{args: []string{"--fn=false", "--dla", "False"}, want: parsed{fn: &no, dla: &no}},
		{args: []string{"--mi-user-assigned", "a", "b", "--tags", "k=v", "k2=", "-n", "hub", "--user", "c"},
			want: parsed{users: []string{"a", "b", "c"}, tags: []string{"k=v", "k2="}, name: "hub", usersGiven: true}},
		{args: []string{"--mi-user-assigned", "-n", "hub"}, want: parsed{name: "hub", usersGiven: true}},
		{args: []string{"--fileupload-notification-max-delivery-count=7"}, want: parsed{fnd: 7}},
		{args: []string{"-n", "hub", "stray"}, err: "unrecognized arguments: stray"},
		{args: []string{"--fn", "true", "false"}, err: "unrecognized arguments: false"},
		{args: []string{"--fn", "maybe"}, err: "unrecognized arguments: maybe"},
		{args: []string{"--user", "a", "--nope"}, err: "unknown flag: --nope"},
	} {
		cmd, a, get := build()
		err := parseAz(t, cmd, a, c.args...)
		if c.err != "" {
			var ue *usageError
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.As(err, &ue) {
				t.Errorf("%q: err %v, want a usage error with %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if got := get(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.args, got, c.want)
		}
	}
}

func TestGenericUpdate(t *testing.T) {
	doc := func() map[string]any {
		var m map[string]any
		json.Unmarshal([]byte(`{"tags":{"env":"test"},"properties":{"minTlsVersion":null,"routing":{"routes":[
			{"name":"a","isEnabled":true},{"name":"b","isEnabled":true}]},"ipFilterRules":[]}}`), &m) //nolint:errcheck
		return m
	}
	for _, c := range []struct {
		args []string
		want string // a JSON fragment of the result
		err  string
	}{
		{args: []string{"--set", "tags.owner=cli", "properties.min_tls_version=1.2"}, want: `"minTlsVersion":1.2`},
		{args: []string{"--set", "properties.minTlsVersion=1.2", "--force-string"}, want: `"minTlsVersion":"1.2"`},
		{args: []string{"--set", "properties.routing.routes[name=b].isEnabled=false"}, want: `{"isEnabled":false,"name":"b"}`},
		{args: []string{"--set", "properties.routing.routes[1].isEnabled=false"}, want: `{"isEnabled":false,"name":"b"}`},
		{args: []string{"--add", "properties.ipFilterRules", "filterName=lab", "action=Accept", "ipMask=10.0.0.0/8"},
			want: `"ipFilterRules":[{"action":"Accept","filterName":"lab","ipMask":"10.0.0.0/8"}]`},
		{args: []string{"--remove", "properties.routing.routes", "0"}, want: `"routes":[{"isEnabled":true,"name":"b"}]`},
		{args: []string{"--remove", "tags.env"}, want: `"tags":{}`},
		// In command-line order: the --add lands before the --remove.
		{args: []string{"--add", "properties.routing.routes", `{"name":"c"}`, "--remove", "properties.routing.routes", "0"},
			want: `"routes":[{"isEnabled":true,"name":"b"},{"name":"c"}]`},
		{args: []string{"--set", "properties.nope.x=1"}, err: "Couldn't find 'nope' in 'properties'."},
		{args: []string{"--set", "properties.routing.routes[5].name=x"}, err: "index 5 doesn't exist"},
		{args: []string{"--set", "=1"}, err: "Empty key in --set"},
	} {
		cmd := &cobra.Command{Use: "x"}
		a := newAZArgs(cmd)
		g := addGenericUpdateFlags(cmd, a)
		if err := parseAz(t, cmd, a, c.args...); err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		d := doc()
		err := g.apply(d)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.args, err, c.err)
			}
			continue
		}
		b, _ := json.Marshal(d)
		if err != nil || !strings.Contains(string(b), c.want) {
			t.Errorf("%q: %v %s, want %s in it", c.args, err, b, c.want)
		}
	}
}

func TestIsoDuration(t *testing.T) {
	for secs, want := range map[int]string{5: "PT5S", 300: "PT5M", 3600: "PT1H", 48 * 3600: "P2D", 25 * 3600: "P1DT1H", 3661: "PT1H1M1S"} {
		if got := isoDuration(secs); got != want {
			t.Errorf("isoDuration(%d) = %s, want %s", secs, got, want)
		}
	}
}
