package org.flock.esnode;

import java.lang.instrument.Instrumentation;

/**
 * The entitlement agent jar (lib/entitlement-agent/) is not published on Maven Central.
 * ES 8.19 attaches it to its own JVM (EntitlementBootstrap.loadAgent) with the name of its
 * initialization class as the agent argument; the agent only hands over the Instrumentation.
 * All entitlement logic stays in Elastic's elasticsearch-entitlement jar.
 */
public final class EntitlementAgent {
    public static void agentmain(String initClassName, Instrumentation inst) throws Exception {
        Class.forName(initClassName).getMethod("initialize", Instrumentation.class).invoke(null, inst);
    }
}
