package org.flock.esnode;

import org.elasticsearch.common.settings.KeyStoreWrapper;

import java.io.BufferedReader;
import java.io.Console;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.GroupPrincipal;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFileAttributes;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * Stands in for Elastic's {@code bin/elasticsearch-keystore} (its CLI is not on Maven Central).
 * Every read and write goes through the server's own {@link KeyStoreWrapper}, so the file is the
 * same format the node loads at start. Only unencrypted keystores (as the deb creates them).
 *
 * <pre>
 * elasticsearch-keystore create
 * elasticsearch-keystore list
 * elasticsearch-keystore add [-f|--force] [-x|--stdin] NAME...   (stdin: one value per line)
 * elasticsearch-keystore remove NAME...
 * elasticsearch-keystore show NAME
 * elasticsearch-keystore has-passwd
 * </pre>
 * Exit codes as Elastic's CLIs: 64 usage, 65 data error (missing keystore or setting), 78 config.
 */
public final class KeystoreCli {
    private static final int USAGE = 64;
    private static final int DATA_ERROR = 65;

    private KeystoreCli() {}

    public static void main(String[] argv) {
        try {
            System.exit(run(new ArrayList<>(Arrays.asList(argv))));
        } catch (UserError e) {
            System.err.println("ERROR: " + e.getMessage());
            System.exit(e.code);
        } catch (Exception e) {
            System.err.println("ERROR: " + e);
            System.exit(1);
        }
    }

    private static int run(List<String> args) throws Exception {
        if (args.isEmpty() || args.contains("-h") || args.contains("--help")) {
            System.err.println("usage: elasticsearch-keystore create | list | add [-f] [-x] NAME... | remove NAME... | show NAME | has-passwd");
            return args.isEmpty() ? USAGE : 0;
        }
        String conf = System.getenv("ES_PATH_CONF");
        if (conf == null || conf.isEmpty()) {
            conf = System.getProperty("es.path.conf");
        }
        Path configDir = Path.of(conf).toAbsolutePath();
        String command = args.remove(0);
        switch (command) {
            case "create" -> {
                noArgs(args);
                if (Files.exists(KeyStoreWrapper.keystorePath(configDir))) {
                    throw new UserError(DATA_ERROR, "an elasticsearch keystore already exists at ["
                        + KeyStoreWrapper.keystorePath(configDir) + "]; remove it first to start over");
                }
                save(KeyStoreWrapper.create(), configDir);
                System.out.println("Created elasticsearch keystore in " + configDir);
            }
            case "list" -> {
                noArgs(args);
                List<String> names = new ArrayList<>(load(configDir).getSettingNames());
                Collections.sort(names);
                names.forEach(System.out::println);
            }
            case "add" -> add(args, configDir);
            case "remove" -> {
                if (args.isEmpty()) {
                    throw new UserError(USAGE, "the setting names to remove are missing");
                }
                KeyStoreWrapper ks = load(configDir);
                for (String name : args) {
                    if (ks.getSettingNames().contains(name) == false) {
                        throw new UserError(DATA_ERROR, "Setting [" + name + "] does not exist in the keystore.");
                    }
                    ks.remove(name);
                }
                save(ks, configDir);
            }
            case "show" -> {
                if (args.size() != 1) {
                    throw new UserError(USAGE, "show takes exactly one setting name");
                }
                KeyStoreWrapper ks = load(configDir);
                if (ks.getSettingNames().contains(args.get(0)) == false) {
                    throw new UserError(DATA_ERROR, "Setting [" + args.get(0) + "] does not exist in the keystore.");
                }
                System.out.println(ks.getString(args.get(0)));
            }
            case "has-passwd" -> {
                noArgs(args);
                load(configDir);
                System.err.println("Keystore is not password-protected");
                return 1;
            }
            default -> throw new UserError(USAGE, "unknown command [" + command + "]");
        }
        return 0;
    }

    private static void add(List<String> args, Path configDir) throws Exception {
        boolean force = false;
        boolean stdin = false;
        List<String> names = new ArrayList<>();
        for (String a : args) {
            switch (a) {
                case "-f", "--force" -> force = true;
                case "-x", "--stdin" -> stdin = true;
                default -> {
                    if (a.startsWith("-")) {
                        throw new UserError(USAGE, "unknown option [" + a + "]");
                    }
                    names.add(a);
                }
            }
        }
        if (names.isEmpty()) {
            throw new UserError(USAGE, "the setting name is missing");
        }
        KeyStoreWrapper ks;
        if (Files.exists(KeyStoreWrapper.keystorePath(configDir))) {
            ks = load(configDir);
        } else if (force) {
            ks = KeyStoreWrapper.create();
        } else {
            throw new UserError(DATA_ERROR, "Elasticsearch keystore not found at [" + KeyStoreWrapper.keystorePath(configDir)
                + "]. Use 'create' command to create one (or add with --force).");
        }
        BufferedReader in = stdin ? new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)) : null;
        for (String name : names) {
            KeyStoreWrapper.validateSettingName(name);
            if (ks.getSettingNames().contains(name) && force == false) {
                throw new UserError(DATA_ERROR, "Setting [" + name + "] already exists; use --force to overwrite it.");
            }
            char[] value;
            if (in != null) {
                String line = in.readLine();
                if (line == null) {
                    throw new UserError(DATA_ERROR, "Missing value for setting [" + name + "] on stdin");
                }
                value = line.toCharArray();
            } else {
                Console console = System.console();
                if (console == null) {
                    throw new UserError(USAGE, "no terminal to prompt for [" + name + "]: use --stdin");
                }
                value = console.readPassword("Enter value for %s: ", name);
            }
            ks.setString(name, value);
            Arrays.fill(value, '\0');
        }
        save(ks, configDir);
    }

    private static KeyStoreWrapper load(Path configDir) throws Exception {
        KeyStoreWrapper ks = KeyStoreWrapper.load(configDir);
        if (ks == null) {
            throw new UserError(DATA_ERROR, "Elasticsearch keystore not found at [" + KeyStoreWrapper.keystorePath(configDir)
                + "]. Use 'create' command to create one.");
        }
        if (ks.hasPassword()) {
            throw new UserError(78, "this keystore is password-protected, which this tool does not support");
        }
        ks.decrypt(new char[0]);
        return ks;
    }

    /** Writes through KeyStoreWrapper (temp file + atomic move, mode 0660) and keeps the owner and
     * group of the file it replaces, so a keystore the service group may read stays readable. */
    private static void save(KeyStoreWrapper ks, Path configDir) throws Exception {
        Path file = KeyStoreWrapper.keystorePath(configDir);
        PosixFileAttributes before = Files.exists(file)
            ? Files.readAttributes(file, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS) : null;
        ks.save(configDir, new char[0]);
        if (before != null) {
            PosixFileAttributeView view = Files.getFileAttributeView(file, PosixFileAttributeView.class);
            GroupPrincipal group = before.group();
            view.setOwner(before.owner());
            view.setGroup(group);
            view.setPermissions(before.permissions());
        }
    }

    private static void noArgs(List<String> args) {
        if (args.isEmpty() == false) {
            throw new UserError(USAGE, "unexpected arguments " + args);
        }
    }

    private static final class UserError extends RuntimeException {
        final int code;

        UserError(int code, String message) {
            super(message);
            this.code = code;
        }
    }
}
