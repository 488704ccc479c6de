"""test_compose.py BIN_DIR: docker-compose.yml and the Dockerfile, checked
without a Docker engine (there is none on our machines).

Parses docker-compose.yml (PyYAML, Debian python3-yaml) and checks: the
services and their images (Apache Kafka in KRaft mode, a schema registry,
PostgreSQL, the leadflow programs built from the Dockerfile); published ports
unique and matching what the services listen on; a health check on every
long-running service, and depends_on conditions that can be met; the
leadflow settings pointing at the services that exist; every flag a leadflow
command uses appearing in that program's --help, and the whole command line
with the service's environment parsing (`-X dump`, exit 0). Then the
Dockerfile: Debian bookworm, the Debian package of every library the CMake
build asks pkg-config for, in both the Makefile's DEB_PACKAGES and the
image's build stage, the runtime libraries and curl for the health check.
Monitoring: every file a service mounts from the tree exists; Prometheus
loads deploy/prometheus (the scrape job `leadflow` on the projector's
metrics port, the alert rules); Grafana is provisioned with a datasource on
that Prometheus and with deploy/grafana/leadflow.json.
"""
import os
import re
import shlex
import subprocess
import sys
import unittest
from urllib.parse import urlparse

import yaml

SRC = os.environ.get("LEADFLOW_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.environ.get("LEADFLOW_BIN", "build/bin"))

with open(os.path.join(SRC, "docker-compose.yml"), encoding="utf-8") as f:
    COMPOSE = yaml.safe_load(f)
SERVICES = COMPOSE["services"]
with open(os.path.join(SRC, "Dockerfile"), encoding="utf-8") as f:
    DOCKERFILE = f.read()


def env_of(svc):
    """A service's environment as a dict (compose allows a list too)."""
    env = SERVICES[svc].get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def command_of(svc):
    cmd = SERVICES[svc].get("command")
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd or [])


def container_ports(svc):
    """Container side of each published port."""
    out = []
    for p in SERVICES[svc].get("ports", []):
        p = str(p).split("/")[0]
        out.append(int(p.split(":")[-1]))
    return out


def leadflow_services():
    return [s for s in SERVICES
            if command_of(s) and command_of(s)[0].startswith("leadflow-")]


def help_of(prog):
    res = subprocess.run([os.path.join(BIN, prog), "--help"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, f"{prog} --help exited {res.returncode}"
    return res.stdout


class Services(unittest.TestCase):
    def test_expected_services(self):
        for s in ("kafka", "schema-registry", "postgres", "project"):
            self.assertIn(s, SERVICES)

    def test_images(self):
        self.assertRegex(SERVICES["kafka"]["image"], r"^apache/kafka:\d")
        self.assertRegex(SERVICES["schema-registry"]["image"],
                         r"^(confluentinc/cp-schema-registry|"
                         r"apicurio/apicurio-registry[\w-]*|"
                         r"redpandadata/redpanda):")
        self.assertRegex(SERVICES["postgres"]["image"], r"^postgres:15")
        for s in leadflow_services():
            self.assertEqual(SERVICES[s].get("build"), ".", s)
            self.assertEqual(SERVICES[s].get("image"), "leadflow:latest", s)

    def test_kafka_is_kraft(self):
        env = env_of("kafka")
        roles = env["KAFKA_PROCESS_ROLES"].split(",")
        self.assertEqual(sorted(roles), ["broker", "controller"])
        self.assertIn("KAFKA_CONTROLLER_QUORUM_VOTERS", env)
        self.assertIn("CLUSTER_ID", env)
        text = yaml.safe_dump(COMPOSE).lower()
        self.assertNotIn("zookeeper", text)
        # A single broker cannot hold internal topics at replication 3.
        self.assertEqual(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"], "1")

    def test_ports(self):
        published = []
        for s, svc in SERVICES.items():
            for p in svc.get("ports", []):
                parts = str(p).split(":")
                if len(parts) >= 2:
                    published.append(parts[-2])
        self.assertEqual(len(published), len(set(published)),
                         f"a host port is published twice: {published}")
        kafka = env_of("kafka")
        listeners = {u.split("://")[0]: int(u.rsplit(":", 1)[1])
                     for u in kafka["KAFKA_LISTENERS"].split(",")}
        advertised = {u.split("://")[0]: u.split("://")[1]
                      for u in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
        # The host reaches the EXTERNAL listener on the published port it
        # is advertised with.
        ext_host, ext_port = advertised["EXTERNAL"].rsplit(":", 1)
        self.assertEqual(ext_host, "localhost")
        self.assertEqual(int(ext_port), listeners["EXTERNAL"])
        self.assertIn(listeners["EXTERNAL"], container_ports("kafka"))
        self.assertEqual(advertised["INTERNAL"], "kafka:%d" %
                         listeners["INTERNAL"])
        reg = urlparse(env_of("schema-registry")
                       ["SCHEMA_REGISTRY_LISTENERS"])
        self.assertIn(reg.port, container_ports("schema-registry"))
        self.assertIn(5432, container_ports("postgres"))
        self.assertIn(self.metrics_port(), container_ports("project"))

    def metrics_port(self):
        cmd = command_of("project")
        addr = cmd[cmd.index("--metrics") + 1]
        return int(addr.rsplit(":", 1)[1])

    def test_healthchecks(self):
        for s, svc in SERVICES.items():
            one_shot = svc.get("restart") == "no" or svc.get("profiles")
            if one_shot:
                continue
            hc = svc.get("healthcheck")
            self.assertIsNotNone(hc, f"{s} has no healthcheck")
            self.assertIn(hc["test"][0], ("CMD", "CMD-SHELL"), s)
            for k in ("interval", "timeout", "retries"):
                self.assertIn(k, hc, f"{s}: healthcheck without {k}")
        test = " ".join(SERVICES["project"]["healthcheck"]["test"])
        self.assertIn("http://localhost:%d/healthz" % self.metrics_port(),
                      test)
        self.assertIn("pg_isready", " ".join(
            SERVICES["postgres"]["healthcheck"]["test"]))
        self.assertIn("/opt/kafka/bin/", " ".join(
            SERVICES["kafka"]["healthcheck"]["test"]))

    def test_depends_on(self):
        for s, svc in SERVICES.items():
            deps = svc.get("depends_on") or {}
            if isinstance(deps, list):
                deps = {d: {"condition": "service_started"} for d in deps}
            for d, cond in deps.items():
                self.assertIn(d, SERVICES, f"{s} depends on unknown {d}")
                c = cond.get("condition", "service_started")
                if c == "service_healthy":
                    self.assertIn("healthcheck", SERVICES[d],
                                  f"{s} waits for {d} to be healthy, "
                                  f"but {d} has no healthcheck")
                elif c == "service_completed_successfully":
                    self.assertEqual(SERVICES[d].get("restart"), "no", d)

    def test_topic_created(self):
        cmd = command_of("kafka-setup")
        self.assertIn("--create", cmd)
        topic = cmd[cmd.index("--topic") + 1]
        for s in leadflow_services():
            self.assertEqual(env_of(s).get("LEADFLOW_TOPIC", "lead-events"),
                             topic, s)

    def test_leadflow_settings_point_at_services(self):
        pg = env_of("postgres")
        for s in leadflow_services():
            env = env_of(s)
            host, port = env["LEADFLOW_BROKERS"].split(":")
            self.assertIn(host, SERVICES, s)
            self.assertIn("INTERNAL://%s:%s" % (host, port),
                          env_of("kafka")["KAFKA_ADVERTISED_LISTENERS"])
            reg = urlparse(env["LEADFLOW_SCHEMA_REGISTRY_URL"])
            self.assertIn(reg.hostname, SERVICES, s)
            self.assertEqual(
                reg.port,
                urlparse(env_of(reg.hostname)["SCHEMA_REGISTRY_LISTENERS"])
                .port)
            db = dict(kv.split("=", 1) for kv in env["LEADFLOW_DB"].split())
            self.assertIn(db["host"], SERVICES, s)
            self.assertEqual(db["dbname"], pg["POSTGRES_DB"], s)
            self.assertEqual(db["user"], pg["POSTGRES_USER"], s)
            # The password goes through the environment, not the conninfo
            # (leadflow masks db in -X dump, but ps shows command lines).
            self.assertNotIn("password", env["LEADFLOW_DB"])

    def test_flags_exist(self):
        """Every option a leadflow command uses is in its --help, and the
        command line parses with the service's environment."""
        self.assertTrue(leadflow_services())
        for s in leadflow_services():
            cmd = command_of(s)
            prog = cmd[0]
            self.assertTrue(os.access(os.path.join(BIN, prog), os.X_OK),
                            f"{s}: no program {prog} in {BIN}")
            usage = help_of(prog)
            for arg in cmd[1:]:
                if not arg.startswith("-") or arg == "-":
                    continue
                flag = arg.split("=", 1)[0]
                if flag.startswith("--"):
                    self.assertRegex(usage, r"(?<![\w-])%s(?![\w-])"
                                     % re.escape(flag),
                                     f"{s}: {prog} has no {flag}")
                else:
                    self.assertRegex(usage, r"(?<![\w-])%s\b"
                                     % re.escape(flag[:2]),
                                     f"{s}: {prog} has no {flag}")
            if prog == "leadflow-replay" and "--help" in cmd:
                continue
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("LEADFLOW_", "PG"))}
            env.update(env_of(s))
            res = subprocess.run([os.path.join(BIN, prog)] + cmd[1:] +
                                 ["-X", "dump"], capture_output=True,
                                 text=True, env=env, timeout=30)
            self.assertEqual(res.returncode, 0,
                             f"{s}: {cmd} -X dump: {res.stderr}")
            dump = dict(line.split("=", 1)
                        for line in res.stdout.splitlines() if "=" in line)
            if "bootstrap.servers" in dump:
                self.assertEqual(dump["bootstrap.servers"], "kafka:9092")
            self.assertEqual(dump.get("db"), "***",
                             f"{s}: the conninfo must be masked")


def bind_mounts(svc):
    """(source in the tree, container path) of a service's bind mounts of
    files or directories of this repository (short syntax)."""
    out = []
    for v in SERVICES[svc].get("volumes", []):
        parts = str(v).split(":")
        if parts[0].startswith("."):
            out.append((os.path.normpath(os.path.join(SRC, parts[0])),
                        parts[1]))
    return out


def mounted_from(svc, container_path):
    """The file of the tree mounted at container_path in svc, or None."""
    for src, dst in bind_mounts(svc):
        if os.path.normpath(dst) == os.path.normpath(container_path):
            return src
    return None


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


class Monitoring(unittest.TestCase):
    def test_bind_mounts_exist(self):
        for s in SERVICES:
            for src, dst in bind_mounts(s):
                self.assertTrue(os.path.exists(src),
                                f"{s} mounts {src}, which does not exist")

    def prometheus_config(self):
        cmd = command_of("prometheus")
        flags = dict(a.split("=", 1) for a in cmd if a.startswith("--"))
        path = flags.get("--config.file", "/etc/prometheus/prometheus.yml")
        src = mounted_from("prometheus", path)
        self.assertIsNotNone(src, f"nothing mounted at {path}")
        return path, src, flags

    def test_prometheus_loads_the_rules(self):
        self.assertRegex(SERVICES["prometheus"]["image"],
                         r"^prom/prometheus:v2\.")
        path, src, _ = self.prometheus_config()
        self.assertEqual(src, os.path.join(SRC, "deploy", "prometheus",
                                           "prometheus.yml"))
        rules = load_yaml(src).get("rule_files") or []
        in_container = [os.path.join(os.path.dirname(path), r)
                        for r in rules]
        self.assertIn(os.path.join(SRC, "deploy", "prometheus", "alerts.yml"),
                      [mounted_from("prometheus", r) for r in in_container],
                      "deploy/prometheus/alerts.yml is not loaded")

    def test_prometheus_scrapes_the_projector(self):
        _, src, _ = self.prometheus_config()
        jobs = {j["job_name"]: j for j in load_yaml(src)["scrape_configs"]}
        # The rules select up{job="leadflow"}.
        self.assertIn("leadflow", jobs)
        targets = [t for sc in jobs["leadflow"]["static_configs"]
                   for t in sc["targets"]]
        cmd = command_of("project")
        port = int(cmd[cmd.index("--metrics") + 1].rsplit(":", 1)[1])
        self.assertIn("project:%d" % port, targets)

    def prometheus_port(self):
        _, _, flags = self.prometheus_config()
        return int(flags.get("--web.listen-address", ":9090")
                   .rsplit(":", 1)[1])

    def test_grafana_datasource(self):
        self.assertRegex(SERVICES["grafana"]["image"],
                         r"^grafana/grafana(-oss)?:\d")
        dirs = "/etc/grafana/provisioning/datasources"
        files = [src for src, dst in bind_mounts("grafana")
                 if os.path.dirname(os.path.normpath(dst)) == dirs]
        self.assertTrue(files, f"no datasource mounted in {dirs}")
        urls = [urlparse(d["url"]) for f in files
                for d in load_yaml(f)["datasources"]
                if d["type"] == "prometheus"]
        self.assertTrue(urls, "no Prometheus datasource provisioned")
        for u in urls:
            self.assertEqual(u.hostname, "prometheus")
            self.assertEqual(u.port, self.prometheus_port())
        self.assertIn("prometheus", SERVICES["grafana"].get("depends_on", {}))

    def test_grafana_dashboard(self):
        dirs = "/etc/grafana/provisioning/dashboards"
        providers = [p for src, dst in bind_mounts("grafana")
                     if os.path.dirname(os.path.normpath(dst)) == dirs
                     for p in load_yaml(src)["providers"]]
        self.assertTrue(providers, f"no dashboard provider in {dirs}")
        dashboard = os.path.join(SRC, "deploy", "grafana", "leadflow.json")
        loaded = [src for src, dst in bind_mounts("grafana")
                  for p in providers
                  if os.path.dirname(os.path.normpath(dst)) ==
                  os.path.normpath(p["options"]["path"])]
        self.assertIn(dashboard, loaded,
                      "deploy/grafana/leadflow.json is not provisioned")


class Dockerfile(unittest.TestCase):
    def deb_packages(self):
        with open(os.path.join(SRC, "Makefile"), encoding="utf-8") as f:
            text = f.read()
        m = re.search(r"^DEB_PACKAGES\s*=((?:.*\\\n)*.*)$", text, re.M)
        self.assertIsNotNone(m, "no DEB_PACKAGES in the Makefile")
        return m.group(1).replace("\\\n", " ").split()

    def stages(self):
        return re.split(r"^FROM ", DOCKERFILE, flags=re.M)[1:]

    def test_bookworm(self):
        for stage in self.stages():
            self.assertRegex(stage, r"^debian:bookworm(-slim)?\b")

    def cmake_packages(self):
        """The Debian package behind every pkg_check_modules() module of
        the CMake build (found from its .pc file), so the image builds
        with exactly what `make` installs for the build."""
        with open(os.path.join(SRC, "CMakeLists.txt"), encoding="utf-8") as f:
            text = f.read()
        modules = re.findall(
            r"pkg_check_modules\(\s*\w+(?:\s+(?:REQUIRED|IMPORTED_TARGET|"
            r"QUIET))*\s+([\w.+-]+)\s*\)", text)
        self.assertIn("rdkafka", modules)
        pkgs = {}
        for mod in modules:
            pcdir = subprocess.run(
                ["pkg-config", "--variable=pcfiledir", mod],
                capture_output=True, text=True).stdout.strip()
            self.assertTrue(pcdir, f"pkg-config does not know {mod}")
            owner = subprocess.run(
                ["dpkg", "-S", os.path.join(pcdir, mod + ".pc")],
                capture_output=True, text=True).stdout
            pkgs[mod] = owner.split(":")[0].strip()
        return pkgs

    def test_build_packages_match_make(self):
        build = self.stages()[0]
        make = self.deb_packages()
        for mod, pkg in self.cmake_packages().items():
            self.assertIn(pkg, make, f"{mod}: {pkg} not in DEB_PACKAGES")
            self.assertRegex(build, r"(?<![\w.-])%s(?![\w.-])"
                             % re.escape(pkg),
                             f"{mod}: the Dockerfile's build stage lacks "
                             f"{pkg}")
        for pkg in ("build-essential", "cmake", "pkg-config"):
            self.assertIn(pkg, make)
            self.assertRegex(build, r"(?<![\w.-])%s(?![\w.-])" % pkg)
        self.assertIn("python3-yaml", make)
        self.assertIn("cmake --install", build)

    def test_runtime(self):
        run = self.stages()[-1]
        for pkg in ("librdkafka1", "libavro23", "libpq5", "libjansson4",
                    "libmicrohttpd12", "libcurl4", "curl"):
            self.assertRegex(run, r"(?<![\w.-])%s(?![\w.-])" % re.escape(pkg))
        self.assertRegex(run, re.compile(r"^USER \w+", re.M),
                         "run as an unprivileged user")
        self.assertIn("EXPOSE 9464", run)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
