package main

import "errors"

// runWebhook runs the webhook subcommand.
func runWebhook(args []string) error {
	return errors.New("the webhook subcommand is not built yet")
}
