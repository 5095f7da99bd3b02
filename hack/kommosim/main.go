// Command kommosim runs the Kommo simulator (kommo/kommotest) as a process, for the demo,
// `make dev` and benchmarks. Point the operator at it with --kommo-endpoint; drive installs
// and revocations through its /_sim/ control API (see kommotest.Simulator.ControlHandler).
//
// The first line on stdout is "listening on http://ADDR".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kommo-operator/kommo-operator/kommo/kommotest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	clientID := flag.String("client-id", "", "integration client id to register (with --client-secret and --redirect-uri)")
	clientSecret := flag.String("client-secret", "", "integration client secret")
	redirectURI := flag.String("redirect-uri", "", "integration Redirect URI, matched exactly")
	channelID := flag.String("channel-id", "", "Chats API channel id to register (with --channel-secret)")
	channelSecret := flag.String("channel-secret", "", "Chats API channel secret")
	tokenLifetime := flag.Duration("token-lifetime", 24*time.Hour, "access token lifetime")
	autoAccounts := flag.Bool("auto-accounts", true, "create an account on first use of any account host")
	refreshGrace := flag.Bool("refresh-grace", false, "keep a used refresh token valid until its successor is used")
	qps := flag.Float64("qps", 0, "requests per second allowed per host (0: Kommo's 7, negative: unlimited)")
	flag.Parse()

	if (*clientID == "") != (*clientSecret == "") || (*clientID != "" && *redirectURI == "") {
		log.Fatal("kommosim: --client-id, --client-secret and --redirect-uri go together")
	}
	if (*channelID == "") != (*channelSecret == "") {
		log.Fatal("kommosim: --channel-id and --channel-secret go together")
	}

	sim := kommotest.New(kommotest.Options{
		TokenLifetime: *tokenLifetime,
		AutoAccounts:  *autoAccounts,
		RefreshGrace:  *refreshGrace,
		QPS:           *qps,
	})
	if *clientID != "" {
		sim.AddIntegration(*clientID, *clientSecret, *redirectURI)
	}
	if *channelID != "" {
		sim.AddChannel(*channelID, *channelSecret)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("kommosim: %v", err)
	}
	// Scripts wait for this line to learn the port.
	fmt.Printf("listening on http://%s\n", ln.Addr())

	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("kommosim: %v", err)
	}
}
