package dev.distillery.common;

/**
 * A job cannot be completed for a reason a person can act on. {@code field} names the request
 * field at fault (a dotted path such as {@code student.architecture}) or is null.
 */
public final class JobFailedException extends Exception {
  private static final long serialVersionUID = 1L;
  private final String field;

  public JobFailedException(String field, String reason, Throwable cause) {
    super(reason, cause);
    this.field = field;
  }

  public JobFailedException(String field, String reason) {
    this(field, reason, null);
  }

  public String field() {
    return field;
  }
}
