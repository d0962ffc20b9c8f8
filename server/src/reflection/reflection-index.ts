// What gRPC server reflection answers from: the served services' .proto files and everything they
// import, looked up by file name or by the fully-qualified name of anything declared in them. The
// descriptors are the ones protoc-gen-es embedded in the generated code (no comments, same
// schema), serialized as google.protobuf.FileDescriptorProto.
import { createRegistry, toBinary, type DescFile, type DescService, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

export class ReflectionIndex {
  /** Full names of the served services, sorted. */
  readonly serviceNames: readonly string[];
  readonly #files = new Map<string, DescFile>();
  readonly #encoded = new Map<string, Uint8Array>();
  readonly #registry: Registry;

  constructor(services: Iterable<DescService>) {
    const names = new Set<string>();
    const add = (file: DescFile): void => {
      if (this.#files.has(file.proto.name)) return;
      this.#files.set(file.proto.name, file);
      file.dependencies.forEach(add);
    };
    for (const service of services) {
      names.add(service.typeName);
      add(service.file);
    }
    this.serviceNames = [...names].sort();
    this.#registry = createRegistry(...this.#files.values());
  }

  /** The file with this name, as imports spell it (`kapsel/v1/ingest.proto`). */
  file(name: string): DescFile | undefined {
    return this.#files.get(name);
  }

  /**
   * The file that declares `symbol`: a service, method, message, field, oneof, enum, enum value or
   * extension, by its fully-qualified name without a leading dot (`kapsel.v1.IngestService.Ingest`).
   */
  fileContainingSymbol(symbol: string): DescFile | undefined {
    const type = this.#registry.get(symbol);
    if (type) return type.file;
    const dot = symbol.lastIndexOf(".");
    if (dot <= 0) return undefined;
    const [scope, member] = [symbol.slice(0, dot), symbol.slice(dot + 1)];
    const parent = this.#registry.get(scope);
    if (parent?.kind === "service" && parent.methods.some((m) => m.name === member)) return parent.file;
    if (parent?.kind === "message" && [...parent.fields, ...parent.oneofs].some((f) => f.name === member)) return parent.file;
    // Enum values are named in the enum's enclosing scope (C++ scoping), not inside the enum.
    for (const candidate of this.#registry) {
      if (candidate.kind !== "enum" || candidate.values.every((v) => v.name !== member)) continue;
      if (candidate.typeName.slice(0, candidate.typeName.lastIndexOf(".")) === scope) return candidate.file;
    }
    return undefined;
  }

  /** The file declaring extension `number` of message `typeName`. */
  fileContainingExtension(typeName: string, number: number): DescFile | undefined {
    const message = this.#registry.getMessage(typeName);
    return message && this.#registry.getExtensionFor(message, number)?.file;
  }

  /** The extension numbers known for message `typeName`; undefined when there is no such message. */
  extensionNumbers(typeName: string): number[] | undefined {
    if (!this.#registry.getMessage(typeName)) return undefined;
    const numbers: number[] = [];
    for (const type of this.#registry) {
      if (type.kind === "extension" && type.extendee.typeName === typeName) numbers.push(type.number);
    }
    return numbers;
  }

  /**
   * `file` and its transitive imports as serialized FileDescriptorProtos, the file first, leaving
   * out (and then adding to `sent`) those this stream has already sent, as the protocol allows.
   */
  encode(file: DescFile, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const visit = (f: DescFile, requested: boolean): void => {
      if (sent.has(f.proto.name) && !requested) return;
      sent.add(f.proto.name);
      out.push(this.#bytes(f));
      f.dependencies.forEach((d) => visit(d, false));
    };
    visit(file, true);
    return out;
  }

  #bytes(file: DescFile): Uint8Array {
    let bytes = this.#encoded.get(file.proto.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.#encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }
}
