package dev.distillery.common.config;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * The directories a request may name, by kind: models (teachers, students, pretrained networks),
 * datasets, and artifacts (where jobs write). Every path or {@code file:} URI in a request is
 * resolved here, {@code ..} and symbolic links included, and must lie under a root of its kind.
 *
 * <p>A path outside is refused with the same words whether or not it exists, so a caller cannot
 * probe the file system through the answers.
 *
 * @param models roots of model files a request may load (TorchScript runs code: see the README)
 * @param datasets roots of dataset directories
 * @param artifacts roots a request's {@code outputUri} may name; the services' own store is one
 */
public record AllowedRoots(List<Path> models, List<Path> datasets, List<Path> artifacts) {
  /** What a request may not name, with the field it was in; says nothing of existence. */
  public static final class OutsideRootsException extends Exception {
    private final String field;

    OutsideRootsException(String field, String problem) {
      super(problem);
      this.field = field;
    }

    public String field() {
      return field;
    }
  }

  public AllowedRoots {
    models = canonical(models);
    datasets = canonical(datasets);
    artifacts = canonical(artifacts);
  }

  /** A model file a request names (teacher or student checkpoint). */
  public Path model(String field, String uri) throws OutsideRootsException {
    return under(field, uri, models);
  }

  public Path dataset(String field, String uri) throws OutsideRootsException {
    return under(field, uri, datasets);
  }

  /** An output directory a request names. */
  public Path artifact(String field, String uri) throws OutsideRootsException {
    return under(field, uri, artifacts);
  }

  /**
   * A checkpoint a stage reads from another stage's event: written by a stage (artifact roots) or
   * named by the request (model roots).
   */
  public Path stageInput(String field, String uri) throws OutsideRootsException {
    return under(field, uri, Stream.concat(artifacts.stream(), models.stream()).toList());
  }

  private static Path under(String field, String uri, List<Path> roots) throws OutsideRootsException {
    Path path = resolve(field, uri);
    if (roots.stream().noneMatch(path::startsWith)) {
      throw new OutsideRootsException(field, "outside the allowed roots");
    }
    return path;
  }

  /**
   * The absolute, real path of a {@code file:} URI or an absolute path: symbolic links of the
   * part that exists are resolved, and {@code ..} in the part that does not cannot climb out.
   */
  static Path resolve(String field, String uri) throws OutsideRootsException {
    Path path;
    try {
      if (uri.regionMatches(true, 0, "file:", 0, 5)) {
        URI parsed = URI.create(uri);
        if (parsed.getAuthority() != null || parsed.getQuery() != null || parsed.getFragment() != null) {
          throw new OutsideRootsException(field, "must be a file: URI without host, query or fragment");
        }
        path = Path.of(parsed);
      } else if (uri.matches("^[A-Za-z][A-Za-z0-9+.-]*:.*")) {
        throw new OutsideRootsException(field, "only file: URIs and absolute paths are supported");
      } else {
        path = Path.of(uri);
      }
    } catch (IllegalArgumentException e) {
      throw new OutsideRootsException(field, "is not a valid file: URI or path");
    }
    if (!path.isAbsolute()) {
      throw new OutsideRootsException(field, "must be an absolute path or file: URI");
    }
    try {
      return realPath(path);
    } catch (IOException e) {
      // A dangling link or a directory we may not read: nothing we can vouch for.
      throw new OutsideRootsException(field, "outside the allowed roots");
    }
  }

  /** {@link Path#toRealPath} of the longest prefix that exists, then the rest, normalised. */
  private static Path realPath(Path path) throws IOException {
    Path existing = path;
    while (existing != null && !Files.exists(existing, LinkOption.NOFOLLOW_LINKS)) {
      existing = existing.getParent();
    }
    if (existing == null) {
      return path.normalize();
    }
    return existing.toRealPath().resolve(existing.relativize(path)).normalize();
  }

  private static List<Path> canonical(List<Path> roots) {
    List<Path> real = new ArrayList<>();
    for (Path root : roots) {
      try {
        real.add(realPath(root.toAbsolutePath()));
      } catch (IOException e) {
        throw new IllegalArgumentException("allowed root " + root + " cannot be resolved: " + e.getMessage(), e);
      }
    }
    return List.copyOf(real);
  }
}
