// Copyright 2019, 2020 OCI Contributors
// Copyright 2017 Docker, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     https://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

package digest

import (
	"regexp"
	"sync"
)

// lazyRegexp is a regular expression compiled on its first use (patched
// for ops: see PATCHED.md). Compiling this package's five expressions at
// init cost every program that links it ~0.43M instructions before main.
// The exported ones keep their names and the *regexp.Regexp methods
// callers use; Regexp gives the compiled expression.
type lazyRegexp struct {
	expr string
	once sync.Once
	re   *regexp.Regexp
}

// lazy is expr, compiled on first use (a bad expression panics then, as
// regexp.MustCompile would have at init; the tests use every one).
func lazy(expr string) *lazyRegexp { return &lazyRegexp{expr: expr} }

// Regexp is the compiled expression.
func (r *lazyRegexp) Regexp() *regexp.Regexp {
	r.once.Do(func() { r.re = regexp.MustCompile(r.expr) })
	return r.re
}

// String is the source text, without compiling it.
func (r *lazyRegexp) String() string { return r.expr }

func (r *lazyRegexp) MatchString(s string) bool { return r.Regexp().MatchString(s) }

func (r *lazyRegexp) FindString(s string) string { return r.Regexp().FindString(s) }

func (r *lazyRegexp) FindStringSubmatch(s string) []string { return r.Regexp().FindStringSubmatch(s) }

func (r *lazyRegexp) FindAllString(s string, n int) []string { return r.Regexp().FindAllString(s, n) }
