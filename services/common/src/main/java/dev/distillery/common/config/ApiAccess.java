package dev.distillery.common.config;

import java.util.List;
import java.util.Set;

/**
 * Who may use the job-status HTTP API.
 *
 * @param tokens bearer tokens that are accepted ({@code api.tokens}, comma-separated, and one per
 *     line of the file {@code api.tokens.file}, such as a mounted Kubernetes Secret); when empty,
 *     the service makes one at start and logs it, so the API is never open
 * @param allowedOrigins browser origins (scheme://host:port) other than the API's own that may
 *     call it ({@code api.allowed.origins}); a request with any other {@code Origin} is refused
 * @param metricsNeedToken whether {@code /metrics} asks for a token too ({@code metrics.require.token});
 *     {@code /health} and {@code /ready} never do, so probes work
 */
public record ApiAccess(Set<String> tokens, List<String> allowedOrigins, boolean metricsNeedToken) {
  public ApiAccess {
    tokens = Set.copyOf(tokens);
    allowedOrigins = List.copyOf(allowedOrigins);
  }
}
