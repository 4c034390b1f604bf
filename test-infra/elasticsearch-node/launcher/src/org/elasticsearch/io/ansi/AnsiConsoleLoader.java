package org.elasticsearch.io.ansi;

import org.elasticsearch.bootstrap.ConsoleLoader;

import java.util.function.Supplier;

/**
 * The server loads this class by name from lib/tools/ansi-console/ (Elastic's jANSI-based jar is
 * not on Maven Central). Returning null means "no interactive console", which is what Elastic's
 * own loader answers whenever output is redirected (systemd, pipes): plain log output.
 */
public class AnsiConsoleLoader implements Supplier<ConsoleLoader.Console> {
    @Override
    public ConsoleLoader.Console get() {
        return null;
    }
}
