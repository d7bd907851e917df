package main

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
)

// nginxConfig is nginx.conf, written afresh on every start. nginx runs as a
// child (daemon off), its error log on stderr and everything else of its
// own inside dir.
var nginxConfig = template.Must(template.New("nginx.conf").Funcs(template.FuncMap{"q": nginxQuote}).Parse(
	`# Written by idlecluster (make run-cluster) on every start: edits are lost.
daemon off;
master_process on;
worker_processes 1;
{{- if .User}}
user {{q .User}};
{{- end}}
pid {{q (printf "%s/nginx.pid" .Dir)}};
error_log stderr notice;
# Open sockets must not hold a stop up for long.
worker_shutdown_timeout 5s;

events {
    worker_connections 1024;
}

http {
    # Which node answered, for the curious (and the quick check).
    log_format upstream '$remote_addr [$time_local] "$request" $status $body_bytes_sent upstream=$upstream_addr';
    access_log {{q (printf "%s/access.log" .Dir)}} upstream;
    client_body_temp_path {{q (printf "%s/client_body" .Dir)}};
    proxy_temp_path {{q (printf "%s/proxy" .Dir)}};
    fastcgi_temp_path {{q (printf "%s/fastcgi" .Dir)}};
    uwsgi_temp_path {{q (printf "%s/uwsgi" .Dir)}};
    scgi_temp_path {{q (printf "%s/scgi" .Dir)}};

    # Round robin, nginx's default: a page and its socket may well land on
    # different nodes, as they may behind any balancer.
    upstream idleguard {
{{- range .Nodes}}
        server {{.}};
{{- end}}
        keepalive 16;
    }

    server {
        listen {{.Listen}};

        location / {
            proxy_pass http://idleguard;
{{- template "headers"}}
            # Keep-alive to the nodes.
            proxy_set_header Connection "";
        }

        # The socket: the upgrade passed on, and timeouts long enough for an
        # idle till (the node pings well within them).
        location = /ws {
            proxy_pass http://idleguard;
{{- template "headers"}}
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
    }
}
{{- /* In each location: one proxy_set_header there drops all of the server's. */}}
{{- define "headers"}}
            proxy_http_version 1.1;
            # $http_host, not $host: the Host header with its port, which
            # the node reads the domain from and compares the Origin with.
            proxy_set_header Host $http_host;
            # nginx is the edge: what a client says it was forwarded for
            # is replaced, not appended to.
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
{{- end}}
`))

// nginxQuote is s as an nginx string.
func nginxQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`).Replace(s) + `"`
}

// nginxData is what nginxConfig is filled with.
type nginxData struct {
	Dir    string   // absolute
	User   string   // who the workers run as, when nginx starts as root
	Listen string   // host:port
	Nodes  []string // host:port of each node
}

func (c *cluster) nginxData(dir, workerUser string) nginxData {
	d := nginxData{Dir: dir, User: workerUser, Listen: addr(c.cfg.port)}
	for i := range nodes {
		d.Nodes = append(d.Nodes, addr(nodePort(c.cfg, i)))
	}
	return d
}

// startNginx writes nginx.conf in dir/nginx and runs nginx on it.
func (c *cluster) startNginx(ctx context.Context) error {
	dir := filepath.Join(c.cfg.dir, "nginx")
	// 0711: the workers reach their temp directories in it, which nginx
	// makes for them.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	workerUser := ""
	if os.Geteuid() == 0 {
		// nginx would run its workers as nobody; Debian's own config uses
		// www-data.
		workerUser = "nobody"
		if _, err := user.Lookup("www-data"); err == nil {
			workerUser = "www-data"
		}
		cred, err := credentialOf(workerUser)
		if err != nil {
			return err
		}
		if err := reachable(c.con, dir, workerUser, cred); err != nil {
			return err
		}
	}
	var conf strings.Builder
	if err := nginxConfig.Execute(&conf, c.nginxData(dir, workerUser)); err != nil {
		return err
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return err
	}
	// -e: the error log before the config is read, which would otherwise
	// be /var/log/nginx/error.log.
	cmd := exec.Command(c.bins.nginx, "-p", dir+"/", "-c", confPath, "-e", "stderr")
	// SIGTERM is nginx's fast shutdown; SIGQUIT would wait for every open
	// socket.
	ch, err := startChild(c.con, "nginx", cmd, syscall.SIGTERM, syscall.SIGTERM, nil)
	if err != nil {
		return err
	}
	c.add(ch)
	// Through nginx to a node: the whole path answers.
	url := "http://" + addr(c.cfg.port) + "/healthz"
	if err := c.ready(ctx, "nginx", healthz(url, "")); err != nil {
		return err
	}
	c.con.printf("nginx is ready on http://%s (config %s)", addr(c.cfg.port), confPath)
	return nil
}
