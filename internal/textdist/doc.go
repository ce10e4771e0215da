// Package textdist measures how far apart two short strings are, for the
// "did you mean …?" hints of Outpost's two expression languages (ARM
// template functions, routing query built-ins).
package textdist
