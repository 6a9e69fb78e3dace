# make run   - local Asterisk 22, prompts, sample data, and `hotline serve` on SQLite
# make test  - lint, types, and the three test tiers (real Asterisk, SQLite and PostgreSQL)
# make bench - benchmarks under bench/, figures printed

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := debootstrap espeak-ng sox postgresql iproute2 chromium fonts-wqy-microhei sip-tester baresip-core openssl fail2ban nftables kamailio kamailio-postgres-modules nginx-light
PG_DIR := /tmp/hotline-test-pg
DEMO_CONFIG := $(if $(wildcard hotline.toml),hotline.toml,hotline.demo.toml)

.PHONY: run run-cluster stop stop-cluster test bench deps venv prompts softphone lint pytest

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

prompts: deps venv
	$(BIN)/hotline prompts build

# The agent desk's softphone: JsSIP from npm, bundled into console/static (nothing is
# fetched when the page is viewed). npm ci installs exactly what package-lock.json says.
SOFTPHONE := console/softphone
softphone: console/static/jssip.js

console/static/jssip.js: $(SOFTPHONE)/package.json $(SOFTPHONE)/package-lock.json
	cd $(SOFTPHONE) && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: deps venv prompts softphone
	@port=$$($(BIN)/python tools/free_port.py); \
	rm -rf $(PG_DIR); \
	url=$$(tools/pg.sh up $(PG_DIR) $$port) || exit 1; \
	trap 'tools/pg.sh down $(PG_DIR)' EXIT; \
	TEST_PG_URL=$$url TEST_REQUIRE_PG=1 PYTEST=$(BIN)/pytest LINT="$(LINT)" tools/pytest_tiers.sh $(PYTEST_ARGS)

# Lint and types run beside the real tier, once the other tiers are done (the real tier is
# the longest): the same checks, a minute less.
test: deps venv
	@$(MAKE) --no-print-directory pytest LINT="$(MAKE) --no-print-directory lint"

run: deps venv prompts softphone
	HOTLINE_CONFIG=$(DEMO_CONFIG) BIN=$(BIN) tools/demo_setup.sh
	HOTLINE_CONFIG=$(DEMO_CONFIG) $(BIN)/hotline asterisk up
	@mkdir -p var; if [ -f var/smsc-sim.pid ] && kill -0 $$(cat var/smsc-sim.pid) 2>/dev/null; then :; else \
	  HOTLINE_CONFIG=$(DEMO_CONFIG) nohup $(BIN)/hotline smsc-sim --control-port 2776 >var/smsc-sim.log 2>&1 & echo $$! >var/smsc-sim.pid; fi
	@echo
	@echo "Asterisk is up and 'hotline serve' is starting (Ctrl-C stops it; 'make stop' stops Asterisk)."
	@set -- $$($(BIN)/hotline sample residents | head -n 1); \
	echo "Place a test call from another terminal: a pension balance query by sample resident $$1"; \
	echo "  HOTLINE_CONFIG=$(DEMO_CONFIG) $(BIN)/hotline call --dtmf \"1W1W1W$${1/X/*}W$$3\" --tail 20"; \
	echo "(other residents, PINs and their expected balances: $(BIN)/hotline sample residents)"; \
	echo "Or as the carrier would, over SIP with RFC 4733 keys (SIPp from 127.0.0.2 on the demo trunk; as root):"; \
	echo "  $$([ "$$(id -u)" = 0 ] || echo 'sudo ')HOTLINE_CONFIG=$(DEMO_CONFIG) $(BIN)/python -m tools.sip_call --dtmf \"1W1W1W$${1/X/*}W$$3\""
	@echo "  or plain SIPp: sipp -sn uac -i 127.0.0.2 -s 12333 127.0.0.1:5060 -m 1 -d 20000"
	@echo "Console: http://127.0.0.1:8080/  agents agent1001 / demo-agent-1001 and agent1002 / demo-agent-1002"
	@echo "  answer in the desk's softphone (网页电话; first open https://127.0.0.1:8089/ws once and accept"
	@echo "  its self-signed certificate), or register a SIP phone as 1001 / demo-sip-1001 (1002 / demo-sip-1002)"
	@echo "  at 127.0.0.1:5060, UDP or TCP; it may dial 12333 too. agent1003 / demo-agent-1003 has a scripted"
	@echo "  phone (rings 3 s, talks 20 s). supervisor / demo-supervisor for the wallboard; its"
	@echo "  监听 / 耳语 / 强插 buttons ring the supervisor's phone 2001 / demo-sip-2001 (register one there)."
	@echo "  pension / demo-pension answers the 养老保险 department's work orders; auditor / demo-auditor reads the audit trail."
	@echo "  Leave a voice message with 6 in the main menu; work orders: $(BIN)/hotline orders list; knowledge base: $(BIN)/hotline kb search 补缴"
	@echo "  Press 0 in a call to reach an agent who has joined the queues."
	@echo "SMS: an SMSC simulator runs on 127.0.0.1:2775 (log var/smsc-sim.log); send a notice with"
	@echo "  HOTLINE_CONFIG=$(DEMO_CONFIG) $(BIN)/hotline events emit pension_credited --subject 330523199411187594 \\"
	@echo "    --payload '{\"name\": \"余雪英\", \"period\": \"2026-11\", \"amount\": 347125}'"
	@echo "  and see it with: HOTLINE_CONFIG=$(DEMO_CONFIG) $(BIN)/hotline sms status"
	@echo "  By a call instead: README \"Voice notices\" (hotline prefs set ... --channels voice,sms; SIPp answers on 127.0.0.2:5070)."
	@echo
	HOTLINE_CONFIG=$(DEMO_CONFIG) $(BIN)/hotline serve

stop: venv
	HOTLINE_CONFIG=$(DEMO_CONFIG) $(BIN)/hotline asterisk down
	@if [ -f var/smsc-sim.pid ]; then kill $$(cat var/smsc-sim.pid) 2>/dev/null || true; rm -f var/smsc-sim.pid; fi

# The same demo as a cluster: PostgreSQL (started here, data in var/cluster-pg), the SIP edge
# (Kamailio) on 127.0.0.1:5060 in front of two Asterisk nodes (127.0.0.11, 127.0.0.12), and
# two FastAGI servers (4573 in the foreground `hotline serve`, 4574 in the background).
CLUSTER_PG_PORT := 55433
CLUSTER_ENV = HOTLINE_CONFIG=$(DEMO_CONFIG) HOTLINE_DATABASE_URL=$$(cat var/cluster-pg.url) \
  HOTLINE_CLUSTER_ENABLED=true HOTLINE_AGI_SERVERS=127.0.0.1:4573,127.0.0.1:4574

run-cluster: deps venv prompts softphone
	@if HOTLINE_CONFIG=$(DEMO_CONFIG) $(BIN)/hotline asterisk status >/dev/null 2>&1; then \
	  echo "make run's Asterisk holds 127.0.0.1:5060: 'make stop' first" >&2; exit 1; fi
	@mkdir -p var; tools/pg.sh up $(CURDIR)/var/cluster-pg $(CLUSTER_PG_PORT) >var/cluster-pg.url
	$(CLUSTER_ENV) BIN=$(BIN) tools/demo_setup.sh
	$(CLUSTER_ENV) $(BIN)/hotline cluster up --nodes 2
	@if [ -f var/smsc-sim.pid ] && kill -0 $$(cat var/smsc-sim.pid) 2>/dev/null; then :; else \
	  HOTLINE_CONFIG=$(DEMO_CONFIG) nohup $(BIN)/hotline smsc-sim --control-port 2776 >var/smsc-sim.log 2>&1 & echo $$! >var/smsc-sim.pid; fi
	@if [ -f var/cluster-serve2.pid ] && kill -0 $$(cat var/cluster-serve2.pid) 2>/dev/null; then :; else \
	  $(CLUSTER_ENV) HOTLINE_AGI_PORT=4574 nohup $(BIN)/hotline serve --only agi >var/cluster-serve2.log 2>&1 & \
	  echo $$! >var/cluster-serve2.pid; fi
	@echo
	@echo "The SIP edge answers on 127.0.0.1:5060 in front of node1 (127.0.0.11) and node2 (127.0.0.12)."
	@echo "Call in as the carrier (SIPp from 127.0.0.2, as root), a few times: the calls alternate between the nodes"
	@set -- $$($(BIN)/hotline sample residents | head -n 1); \
	echo "  $(CLUSTER_ENV) $(BIN)/python -m tools.sip_call --dtmf \"1W1W1W$${1/X/*}W$$3\""
	@echo "  then: $(CLUSTER_ENV) $(BIN)/hotline calls show --last   (it says which node)"
	@echo "See the cluster: $(CLUSTER_ENV) $(BIN)/hotline cluster status"
	@echo "Kill a node:     kill -9 \$$(cat ~/.cache/hotline/asterisk-22-node1.pid); new calls go to node2 at once,"
	@echo "  and status shows node1 inactive; '$(CLUSTER_ENV) $(BIN)/hotline cluster up' brings it back."
	@echo "Phones register at the edge: 1001 / demo-sip-1001 (1002 / demo-sip-1002) at 127.0.0.1:5060."
	@echo "Console: http://127.0.0.1:8080/ as in make run. 'make stop-cluster' stops it all."
	@echo
	$(CLUSTER_ENV) $(BIN)/hotline serve

stop-cluster: venv
	@if [ -f var/cluster-serve2.pid ]; then kill $$(cat var/cluster-serve2.pid) 2>/dev/null || true; rm -f var/cluster-serve2.pid; fi
	@if [ -f var/cluster-pg.url ]; then $(CLUSTER_ENV) $(BIN)/hotline cluster down; fi
	@if [ -f var/smsc-sim.pid ]; then kill $$(cat var/smsc-sim.pid) 2>/dev/null || true; rm -f var/smsc-sim.pid; fi
	tools/pg.sh down $(CURDIR)/var/cluster-pg

# The FastAGI load twice: a burst (throughput ceiling) and callers keying at a human pace
# (latency with 500 calls connected); then concurrent real calls through the local Asterisk
# (Local channels, then SIP calls from SIPp as the carrier beside the same calls as Local ones),
# notice calls out at the dialler's cap beside the same inbound calls without them, and the
# same SIP calls through the cluster's edge to one and two nodes, one node killed mid-run.
# The benchmarks' calls are their own (asterisk.instance): Asterisk writes their records
# apart from the demo's, and the demo's catch-up never imports them.
BENCH_ENV = HOTLINE_CONFIG=$(DEMO_CONFIG) HOTLINE_ASTERISK_INSTANCE=bench

bench: deps venv prompts
	$(BIN)/python -m bench.fastagi_load
	$(BIN)/python -m bench.fastagi_load --think-ms 1000 --only ab
	$(BIN)/python -m bench.ami_ingest
	$(BIN)/python -m bench.sms_gateway
	$(BIN)/python -m bench.sick_bind
	$(BIN)/python -m bench.destinations
	$(BIN)/python -m bench.reports
	$(BIN)/python -m bench.audit_chain
	$(BIN)/python -m bench.console_load
	$(BENCH_ENV) $(BIN)/hotline asterisk up >/dev/null
	$(BENCH_ENV) $(BIN)/python -m bench.asterisk_calls
	$(BENCH_ENV) $(BIN)/python -m bench.sip_calls
	$(BENCH_ENV) $(BIN)/python -m bench.queued_calls
	$(BENCH_ENV) $(BIN)/python -m bench.notice_calls
	$(BENCH_ENV) $(BIN)/python -m bench.cluster_calls
