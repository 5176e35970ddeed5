//go:build linux && race

package ctest

func init() { raceEnabled = true }
