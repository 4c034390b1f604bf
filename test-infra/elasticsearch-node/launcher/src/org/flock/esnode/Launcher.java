package org.flock.esnode;

import org.elasticsearch.bootstrap.ServerArgs;
import org.elasticsearch.common.io.stream.OutputStreamStreamOutput;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.KeyStoreWrapper;
import org.elasticsearch.common.settings.SecureSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.SequenceInputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Stands in for Elastic's server-cli (not published on Maven Central), but in the same JVM as the server.
 *
 * Elastic's CLI resolves the settings, builds {@link ServerArgs} and writes them to the stdin of a
 * second JVM running org.elasticsearch.bootstrap.Elasticsearch. Here we resolve the settings with
 * the same ES classes (InternalSettingsPreparer reads $ES_PATH_CONF/elasticsearch.yml exactly like
 * the real CLI), serialize the ServerArgs into a stdin replacement and call Elasticsearch.main
 * directly. The replacement stdin never reaches EOF: the server treats EOF on stdin as "the CLI
 * died" and exits, so a foreground node under systemd (stdin=/dev/null) must not see it.
 * Shutdown is by SIGTERM (ES's own shutdown hook closes the node cleanly).
 */
public final class Launcher {

    // BootstrapInfo.SERVER_READY_MARKER: the server prints it (plus a newline) on its original
    // stderr for the CLI; nobody here consumes it, so keep it off the console/journal.
    private static final int READY_MARKER = '\u0018';

    public static void main(String[] argv) throws Throwable {
        Map<String, String> settings = new HashMap<>();
        Path pidFile = null;
        boolean quiet = false;
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (a.equals("-E") && i + 1 < argv.length) {
                addSetting(settings, argv[++i]);
            } else if (a.startsWith("-E") && a.length() > 2) {
                addSetting(settings, a.substring(2));
            } else if ((a.equals("-p") || a.equals("--pidfile")) && i + 1 < argv.length) {
                pidFile = Path.of(argv[++i]).toAbsolutePath();
            } else if (a.equals("-q") || a.equals("--quiet")) {
                quiet = true;
            } else if (a.equals("-V") || a.equals("--version")) {
                System.out.println("Version: " + org.elasticsearch.Build.current().qualifiedVersion()
                    + " (built from Maven Central jars, not Elastic's distribution), JVM: " + Runtime.version());
                return;
            } else {
                // -d (daemonize) and keystore passwords are deliberately unsupported: run under systemd instead.
                System.err.println("elasticsearch: unsupported argument [" + a + "]; supported: -E k=v, -p <pidfile>, -q, -V");
                System.exit(64);
            }
        }
        // Same inputs the real CLI uses (EnvironmentAwareCommand.createEnv): es.path.* system properties.
        putIfMissing(settings, "path.home", System.getProperty("es.path.home"));
        putIfMissing(settings, "path.data", System.getProperty("es.path.data"));
        putIfMissing(settings, "path.logs", System.getProperty("es.path.logs"));
        Path configDir = Path.of(System.getProperty("es.path.conf"));
        // ES's logging facade needs its provider before any ES class logs (the real CLI does this too);
        // log4j itself is configured later by the server from log4j2.properties.
        LogConfigurator.configureESLogging();
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            Settings.EMPTY, settings, configDir, () -> System.getenv("HOSTNAME"));

        ServerArgs args = new ServerArgs(false, quiet, pidFile, loadSecrets(env.configDir()),
            env.settings(), env.configDir(), env.logsDir());
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (OutputStreamStreamOutput out = new OutputStreamStreamOutput(buf)) {
            args.writeTo(out);
        }
        System.setIn(new SequenceInputStream(new ByteArrayInputStream(buf.toByteArray()), new NeverEndingInput()));
        System.setErr(new PrintStream(new MarkerFilter(new java.io.FileOutputStream(java.io.FileDescriptor.err)), true));

        // Elasticsearch is package-private; bin/elasticsearch opens org.elasticsearch.bootstrap to us.
        Method main = Class.forName("org.elasticsearch.bootstrap.Elasticsearch").getDeclaredMethod("main", String[].class);
        main.setAccessible(true);
        try {
            main.invoke(null, (Object) new String[0]);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    /** The keystore if one exists (unencrypted, as the deb/rpm create it); otherwise an in-memory empty one,
     * so a read-only config dir (e.g. /etc/elasticsearch owned by root) is never written to. */
    private static SecureSettings loadSecrets(Path configDir) throws Exception {
        KeyStoreWrapper ks = KeyStoreWrapper.load(configDir);
        if (ks == null) {
            return KeyStoreWrapper.create();
        }
        ks.decrypt(new char[0]);
        return ks;
    }

    private static void addSetting(Map<String, String> settings, String kv) {
        int eq = kv.indexOf('=');
        if (eq <= 0 || eq == kv.length() - 1) {
            System.err.println("elasticsearch: setting must be key=value, got [" + kv + "]");
            System.exit(64);
        }
        settings.put(kv.substring(0, eq), kv.substring(eq + 1));
    }

    private static void putIfMissing(Map<String, String> settings, String key, String value) {
        if (value != null && value.isEmpty() == false) {
            settings.putIfAbsent(key, value);
        }
    }

    /** Blocks forever: the server's CLI monitor thread must never see EOF (see class comment). */
    private static final class NeverEndingInput extends InputStream {
        @Override
        public synchronized int read() {
            while (true) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return -1;
                }
            }
        }
    }

    /** Drops the ready marker byte and the newline printed right after it. */
    private static final class MarkerFilter extends FilterOutputStream {
        private boolean skipNewline;

        MarkerFilter(OutputStream out) {
            super(out);
        }

        @Override
        public void write(int b) throws IOException {
            if (b == READY_MARKER) {
                skipNewline = true;
                return;
            }
            if (skipNewline && b == '\n') {
                skipNewline = false;
                return;
            }
            skipNewline = false;
            out.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            for (int i = off; i < off + len; i++) {
                write(b[i]);
            }
        }
    }
}
