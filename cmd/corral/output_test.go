package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/api"
)

func testApp(output string) (*cliApp, *bytes.Buffer) {
	var out bytes.Buffer
	return &cliApp{stdout: &out, stderr: &bytes.Buffer{}, output: output}, &out
}

var testUsers = func() []api.User {
	exp := time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)
	return []api.User{
		{UserID: "root@pam", Enabled: true, Comment: "built-in\tadmin"},
		{UserID: "alice@corral", Enabled: false, FirstName: "Alice", LastName: "Liddell",
			Email: "alice@example.org", Groups: []string{"ops", "dev"}, Expire: &exp},
	}
}()

var userCols = []column[api.User]{
	{"USERID", func(u api.User) string { return u.UserID }},
	{"ENABLED", func(u api.User) string { return yesNo(u.Enabled) }},
	{"NAME", func(u api.User) string { return strings.TrimSpace(u.FirstName + " " + u.LastName) }},
	{"GROUPS", func(u api.User) string { return strings.Join(u.Groups, ",") }},
	{"EXPIRE", func(u api.User) string { return fmtTimePtr(u.Expire) }},
	{"COMMENT", func(u api.User) string { return u.Comment }},
}

func TestPrintList(t *testing.T) {
	tests := []struct {
		format string
		rows   []api.User
		want   string
	}{
		{
			format: formatTable,
			rows:   testUsers,
			want: "" +
				"USERID        ENABLED  NAME           GROUPS   EXPIRE                COMMENT\n" +
				"root@pam      yes      -              -        -                     built-in admin\n" +
				"alice@corral  no       Alice Liddell  ops,dev  2030-01-02T00:00:00Z  -\n",
		},
		{
			format: formatTable,
			rows:   nil,
			want:   "USERID  ENABLED  NAME  GROUPS  EXPIRE  COMMENT\n",
		},
		{
			format: formatJSON,
			rows:   testUsers[:1],
			want: "[\n  {\n    \"userid\": \"root@pam\",\n    \"enabled\": true,\n" +
				"    \"comment\": \"built-in\\tadmin\"\n  }\n]\n",
		},
		{
			format: formatJSON,
			rows:   nil,
			want:   "[]\n",
		},
		{
			format: formatYAML,
			rows:   testUsers[1:],
			want: "" +
				"- userid: alice@corral\n" +
				"  enabled: false\n" +
				"  expire: \"2030-01-02T00:00:00Z\"\n" +
				"  firstname: Alice\n" +
				"  lastname: Liddell\n" +
				"  email: alice@example.org\n" +
				"  groups:\n" +
				"    - ops\n" +
				"    - dev\n",
		},
		{
			format: formatYAML,
			rows:   nil,
			want:   "[]\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			a, out := testApp(tt.format)
			if err := printList(a, tt.rows, userCols); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tt.want)
			}
		})
	}
}

func TestPrintObjectTable(t *testing.T) {
	a, out := testApp(formatTable)
	err := a.printObject(struct{}{}, []kvField{{"userid", "alice@corral"}, {"comment", "two\nlines"}, {"email", ""}})
	if err != nil {
		t.Fatal(err)
	}
	want := "userid   alice@corral\ncomment  two\\nlines\nemail    -\n"
	if out.String() != want {
		t.Errorf("output:\n%q\nwant:\n%q", out.String(), want)
	}
}

func TestPrintRawJSON(t *testing.T) {
	tests := []struct {
		name, format, in, want string
	}{
		{
			name:   "list of objects: union of columns in first-seen order",
			format: formatTable,
			in:     `[{"node":"n1","online":true,"load":[0.5,1]},{"node":"n2","online":false,"extra":{"a":1}}]`,
			want: "" +
				"NODE  ONLINE  LOAD   EXTRA\n" +
				"n1    true    0.5,1  -\n" +
				"n2    false   -      {\"a\":1}\n",
		},
		{
			name:   "object as key/value rows in server order",
			format: formatTable,
			in:     `{"$schema":"https://h/schemas/TaskRef.json","task":"UPID:n1:1:2:sleep::root@pam:","b":null,"a":[{"x":1}]}`,
			want:   "task  UPID:n1:1:2:sleep::root@pam:\nb     -\na     [{\"x\":1}]\n",
		},
		{
			name:   "list of scalars",
			format: formatTable,
			in:     `["a","b"]`,
			want:   "a\nb\n",
		},
		{
			name:   "empty body prints nothing",
			format: formatJSON,
			in:     "",
			want:   "",
		},
		{
			name:   "json is re-indented",
			format: formatJSON,
			in:     `{"b":1,"a":[true]}`,
			want:   "{\n  \"b\": 1,\n  \"a\": [\n    true\n  ]\n}\n",
		},
		{
			name:   "yaml keeps key order and quotes strings that look like other types",
			format: formatYAML,
			in:     `{"zeta":"true","alpha":12,"pi":3.5,"none":null,"empty":{},"list":[],"text":"a\nb","id":"0755"}`,
			want: "" +
				"zeta: \"true\"\n" +
				"alpha: 12\n" +
				"pi: 3.5\n" +
				"none: null\n" +
				"empty: {}\n" +
				"list: []\n" +
				"text: |-\n  a\n  b\n" +
				"id: \"0755\"\n",
		},
		{
			name:   "non-JSON body is shown verbatim",
			format: formatTable,
			in:     "hello",
			want:   "hello\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, out := testApp(tt.format)
			if err := a.printRawJSON([]byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tt.want)
			}
		})
	}
}

func TestFormatters(t *testing.T) {
	tests := []struct{ got, want string }{
		{fmtBytes(0), "0 B"},
		{fmtBytes(1023), "1023 B"},
		{fmtBytes(1536), "1.5 KiB"},
		{fmtBytes(8 << 30), "8.0 GiB"},
		{fmtUsage(1<<30, 4<<30), "1.0 GiB / 4.0 GiB (25%)"},
		{fmtUsage(0, 0), ""},
		{fmtDuration(59), "0m 59s"},
		{fmtDuration(3*3600 + 120), "3h 2m"},
		{fmtDuration(2*86400 + 3600 + 60), "2d 1h 1m"},
		{fmtCapability(api.Capability{Available: true, Version: "8.2.0"}), "available 8.2.0"},
		{fmtCapability(api.Capability{Detail: "/dev/kvm missing"}), "unavailable (/dev/kvm missing)"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

func TestCheckOutputFlag(t *testing.T) {
	for _, f := range []string{"table", "json", "yaml"} {
		if err := (&cliApp{output: f}).checkOutputFlag(); err != nil {
			t.Errorf("%s rejected: %v", f, err)
		}
	}
	if err := (&cliApp{output: "xml"}).checkOutputFlag(); err == nil {
		t.Error("xml accepted")
	}
}
