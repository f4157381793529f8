package broker.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

/**
 * Validates every {@code *.json} FHIR R4 resource in a directory, offline, in one JVM run.
 *
 * <p>The support chain is HAPI's built-in one over the packaged R4 definitions
 * (hapi-fhir-validation-resources-r4): core profiles, code systems and value sets, the common code
 * systems (UCUM, languages, mime types...) and in-memory terminology. No remote terminology server is
 * configured, so nothing leaves this machine. Prints one JSON object: {"validator": version,
 * "results": [{"file": name, "messages": [{"severity", "location", "message", "id"}]}]}.
 */
public final class ValidateDir {
  private ValidateDir() {}

  public static void main(String[] args) throws IOException {
    if (args.length != 1) {
      System.err.println("usage: hapi-validate DIRECTORY");
      System.exit(2);
    }
    FhirContext ctx = FhirContext.forR4();
    ValidationSupportChain chain =
        new ValidationSupportChain(
            new DefaultProfileValidationSupport(ctx),
            new CommonCodeSystemsTerminologyService(ctx),
            new InMemoryTerminologyServerValidationSupport(ctx),
            new SnapshotGeneratingValidationSupport(ctx));
    FhirInstanceValidator module = new FhirInstanceValidator(chain);
    module.setAnyExtensionsAllowed(true);
    FhirValidator validator = ctx.newValidator().registerValidatorModule(module);

    List<Path> files;
    try (Stream<Path> s = Files.list(Path.of(args[0]))) {
      files = s.filter(p -> p.toString().endsWith(".json")).sorted().collect(Collectors.toList());
    }
    StringBuilder out = new StringBuilder();
    out.append("{\"validator\":").append(q(ca.uhn.fhir.util.VersionUtil.getVersion())).append(",\"results\":[");
    boolean firstFile = true;
    for (Path file : files) {
      String text = Files.readString(file, StandardCharsets.UTF_8);
      ValidationResult result = validator.validateWithResult(text);
      out.append(firstFile ? "" : ",").append("{\"file\":").append(q(file.getFileName().toString()));
      out.append(",\"messages\":[");
      boolean first = true;
      for (SingleValidationMessage m : result.getMessages()) {
        out.append(first ? "" : ",").append("{\"severity\":").append(q(String.valueOf(m.getSeverity())));
        out.append(",\"location\":").append(q(String.valueOf(m.getLocationString())));
        out.append(",\"message\":").append(q(String.valueOf(m.getMessage())));
        out.append(",\"id\":").append(q(String.valueOf(m.getMessageId()))).append("}");
        first = false;
      }
      out.append("]}");
      firstFile = false;
    }
    out.append("]}");
    System.out.println(out);
  }

  private static String q(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }
}
