/** The vector library over HTTP: list, show, upload (raw body or multipart), delete. */
import type { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ApiError } from "./api-error.js";
import { uploadQuerySchema } from "./schemas.js";
import type { VectorLibrary } from "./vector-library.js";

export function vectorRoutes(
  app: Hono,
  library: VectorLibrary,
  tooLarge: (limit: number) => () => never,
): void {
  app.get("/v1/steering/vectors", (c) => c.json({ object: "list", data: library.list() }));
  app.get("/v1/steering/vectors/:name", (c) => c.json(library.info(c.req.param("name"))));
  const uploadLimit = library.maxBytes + 64 * 1024; // multipart framing
  app.post(
    "/v1/steering/vectors",
    bodyLimit({ maxSize: uploadLimit, onError: tooLarge(library.maxBytes) }),
    async (c) => {
      const q = uploadQuerySchema.parse(c.req.query());
      let name = q.name;
      let bytes: Uint8Array;
      const type = c.req.header("content-type") ?? "";
      if (type.startsWith("multipart/form-data")) {
        const form = await c.req.formData();
        const file = form.get("file");
        if (!(file instanceof File))
          throw new ApiError(
            400,
            "multipart upload needs a 'file' field",
            "invalid_request_error",
            "missing_file",
            "file",
          );
        const field = form.get("name");
        name ??= typeof field === "string" && field ? field : file.name.replace(/\.(gguf|safetensors)$/i, "");
        bytes = new Uint8Array(await file.arrayBuffer());
      } else {
        bytes = new Uint8Array(await c.req.arrayBuffer());
      }
      if (!name)
        throw new ApiError(
          400,
          "name the vector: ?name=NAME (or a multipart 'name' field)",
          "invalid_request_error",
          "missing_name",
          "name",
        );
      return c.json(library.add(name, bytes, q.overwrite === "true"), 201);
    },
  );
  app.delete("/v1/steering/vectors/:name", (c) => {
    const name = c.req.param("name");
    library.remove(name);
    return c.json({ id: name, object: "steering.vector", deleted: true });
  });
}
