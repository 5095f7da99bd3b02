package main

import "errors"

// runController runs the controller subcommand.
func runController(args []string) error {
	return errors.New("the controller subcommand is not built yet")
}
