// Package controllers holds the reconcilers of KommoIntegration and KommoInstallation.
package controllers
