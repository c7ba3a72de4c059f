package dev.distillery.common.config;

import dev.distillery.common.artifacts.ArtifactStore;
import java.io.IOException;
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

  /** The real path of a {@code file:} URI or an absolute path ({@link ArtifactStore#localPath}). */
  static Path resolve(String field, String uri) throws OutsideRootsException {
    if (!uri.startsWith("/") && !ArtifactStore.hasScheme(uri)) {
      throw new OutsideRootsException(field, "must be an absolute path or file: URI");
    }
    try {
      return ArtifactStore.localPath(uri);
    } catch (IllegalArgumentException e) {
      // Also a dangling link or an unreadable directory: nothing we can vouch for, and nothing to tell.
      throw new OutsideRootsException(field, e.getCause() instanceof IOException ? "outside the allowed roots"
          : e.getMessage());
    }
  }

  private static List<Path> canonical(List<Path> roots) {
    List<Path> real = new ArrayList<>();
    for (Path root : roots) {
      try {
        real.add(ArtifactStore.localPath(root.toAbsolutePath().toString()));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("allowed root " + root + " cannot be resolved", e);
      }
    }
    return List.copyOf(real);
  }
}
