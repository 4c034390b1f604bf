package org.flock.esnode.analysis;

import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.TokenFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.elasticsearch.index.analysis.AbstractTokenFilterFactory;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * The three analysis components the {@code .security} index's settings name (its "email"
 * analyzer: tokenizer {@code uax_url_email}, filters {@code pattern_capture}, {@code lowercase},
 * {@code unique}) and that live in Elastic's analysis-common module, which is not published on
 * Maven Central. Not Elastic's code: thin factories over the Lucene classes in
 * lucene-analysis-common (already in lib/), with the settings Elastic documents for them.
 * Without these the native realm cannot create its index ("Unknown filter type [pattern_capture]").
 */
public final class FlockAnalysisPlugin extends Plugin implements AnalysisPlugin {

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.of(
            "pattern_capture", AnalysisPlugin.requiresAnalysisSettings(FlockAnalysisPlugin::patternCapture),
            "unique", FlockAnalysisPlugin::unique);
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of("uax_url_email", (indexSettings, env, name, settings) -> {
            int maxTokenLength = settings.getAsInt("max_token_length", 255);
            return TokenizerFactory.newFactory(name, () -> {
                UAX29URLEmailTokenizer tokenizer = new UAX29URLEmailTokenizer();
                tokenizer.setMaxTokenLength(maxTokenLength);
                return tokenizer;
            });
        });
    }

    /** Settings: patterns (required, one or more regexes), preserve_original (default true). */
    private static TokenFilterFactory patternCapture(
            org.elasticsearch.index.IndexSettings indexSettings, org.elasticsearch.env.Environment env,
            String name, org.elasticsearch.common.settings.Settings settings) {
        List<String> regexes = settings.getAsList("patterns");
        if (regexes.isEmpty()) {
            throw new IllegalArgumentException("required setting 'patterns' is missing for token filter [" + name + "]");
        }
        Pattern[] patterns = regexes.stream().map(Pattern::compile).toArray(Pattern[]::new);
        boolean preserveOriginal = settings.getAsBoolean("preserve_original", true);
        return new AbstractTokenFilterFactory(name, settings) {
            @Override
            public TokenStream create(TokenStream in) {
                return new PatternCaptureGroupTokenFilter(in, preserveOriginal, patterns);
            }
        };
    }

    /** Settings: only_on_same_position (default false: drop a term seen anywhere earlier in the stream). */
    private static TokenFilterFactory unique(
            org.elasticsearch.index.IndexSettings indexSettings, org.elasticsearch.env.Environment env,
            String name, org.elasticsearch.common.settings.Settings settings) {
        boolean onlyOnSamePosition = settings.getAsBoolean("only_on_same_position", false);
        return new AbstractTokenFilterFactory(name, settings) {
            @Override
            public TokenStream create(TokenStream in) {
                return new UniqueTokenFilter(in, onlyOnSamePosition);
            }
        };
    }

    /** Drops tokens whose term was already emitted (or, optionally, already emitted at the same position). */
    static final class UniqueTokenFilter extends TokenFilter {
        private final CharTermAttribute term = addAttribute(CharTermAttribute.class);
        private final org.apache.lucene.analysis.tokenattributes.PositionIncrementAttribute posInc =
            addAttribute(org.apache.lucene.analysis.tokenattributes.PositionIncrementAttribute.class);
        private final CharArraySet seen = new CharArraySet(8, false);
        private final boolean onlyOnSamePosition;

        UniqueTokenFilter(TokenStream in, boolean onlyOnSamePosition) {
            super(in);
            this.onlyOnSamePosition = onlyOnSamePosition;
        }

        @Override
        public boolean incrementToken() throws IOException {
            while (input.incrementToken()) {
                char[] buf = term.buffer();
                int len = term.length();
                boolean duplicate;
                if (onlyOnSamePosition) {
                    if (posInc.getPositionIncrement() > 0) {
                        seen.clear();
                    }
                    duplicate = posInc.getPositionIncrement() == 0 && seen.contains(buf, 0, len);
                } else {
                    duplicate = seen.contains(buf, 0, len);
                }
                seen.add(java.util.Arrays.copyOf(buf, len));
                if (duplicate == false) {
                    return true;
                }
            }
            return false;
        }

        @Override
        public void reset() throws IOException {
            super.reset();
            seen.clear();
        }
    }
}
